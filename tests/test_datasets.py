"""Reading exact data sets: splits, PyG batches, arrays and metadata, damaged files."""
import h5py
import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from ecnn_pyg import keys as K
from ecnn_pyg.datasets import DataFileError, SpinDataset, read_arrays, read_meta


def test_splits_and_batches(small_dataset):
    train, val = SpinDataset(small_dataset, "train"), SpinDataset(small_dataset, "val")
    assert len(train) == 4 and len(val) == 2 and len(SpinDataset(small_dataset, None)) == 6
    d = train[0]
    assert d[K.SPIN].shape == (25, 3) and d[K.FIELD].shape == (25, 3)
    assert torch.allclose(d[K.SPIN].norm(dim=-1), torch.ones(25, dtype=d[K.SPIN].dtype))
    batch = next(iter(DataLoader(train, batch_size=3)))
    assert batch.num_graphs == 3 and batch[K.SPIN].shape == (75, 3)
    # batching offsets the bonds of each graph by the sites before it
    assert batch.edge_index.max() >= 50 and batch.edge_index.min() == 0


def test_arrays_equal_the_samples(small_dataset):
    arrays = read_arrays(small_dataset, "val")
    val = SpinDataset(small_dataset, "val")
    for i in range(2):
        assert np.allclose(arrays[K.SPIN][i], val[i][K.SPIN].numpy())
        assert arrays[K.ENERGY][i] == pytest.approx(val[i][K.ENERGY].item())
    meta = read_meta(small_dataset)
    assert meta["n_done"] == 6 and meta["lattice"] == "triangular"


def test_bad_files(tmp_path, small_dataset):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n garbage" * 10)
    with pytest.raises(DataFileError, match="not a readable HDF5"):
        SpinDataset(bad)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(DataFileError, match="not an ecnn_pyg data set"):
        SpinDataset(tmp_path / "other.h5")
    with pytest.raises(DataFileError, match="does not exist"):
        SpinDataset(tmp_path / "missing.h5")
    with pytest.raises(DataFileError, match="not 'test'"):
        SpinDataset(small_dataset, "test")
