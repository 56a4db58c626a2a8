"""Names of the fields carried by graphs, data sets and model outputs.

Use these constants instead of string literals (as NequIP's ``_keys.py``).
Per-edge labels never contain ``index``: PyG offsets every key containing
``index`` when batching.
"""

# per node
POS = "pos"
SPIN = "spin"                 # (N, 3) unit spins
FIELD = "field"               # (N, 3) effective field B = -dE/dS
LOCAL_ENERGY = "local_energy"
SUBLATTICE = "sublattice"     # (N,) basis index of each site
CELL = "cell"                 # (N, dim) integer cell coordinates

# per edge
EDGE_INDEX = "edge_index"     # (2, E): message flows edge_index[0] -> edge_index[1]
HOPPING = "hopping"           # (E,) amplitude t of the bond
BOND_SHELL = "bond_shell"     # (E,) index of the hopping shell
BOND_TYPE = "bond_type"       # (E,) directed bond class (offset class)
CELL_SHIFT = "cell_shift"     # (E, dim) periodic image of the target, in supercells
EDGE_VEC = "edge_vec"         # (E, dim) Cartesian bond vector source -> target

# per graph
ENERGY = "energy"             # (1,) total energy
SIZE = "size"                 # (1, dim) supercell size L_i
LATTICE = "lattice"           # str, lattice name
