"""Arrow arrays built from buffers equal pyarrow's own conversions (nulls, Unicode, offsets, slices)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from medrag.ingest.columns import int32_array, numpy_array, to_numpy, utf8_array, utf8_list_array


@pytest.mark.parametrize(
    "values", [["a", "bc", ""], ["x", None, "µg ≥ 5"], [None, None], [], ["é" * 3, "plain", None, "β"]]
)
def test_utf8_array_equals_pa_array(values):
    built = utf8_array(values)
    built.validate(full=True)
    assert built.equals(pa.array(values, pa.string()))


def test_int32_and_list_arrays_equal_pa_array():
    for values in ([1, None, -3], [0, 2**31 - 1], [None]):
        assert int32_array(values).equals(pa.array(values, pa.int32()))
    lists = [("D001", "D002"), (), ("β-blocker",)]
    built = utf8_list_array(lists)
    built.validate(full=True)
    assert built.equals(pa.array([list(x) for x in lists], pa.list_(pa.string())))


def test_numpy_round_trips_through_buffers():
    for arr in (np.arange(5, dtype=np.int32), np.arange(5, dtype=np.int64) * 7, np.array([True, False] * 9)):
        built = numpy_array(arr)
        assert built.to_pylist() == arr.tolist()
        assert to_numpy(built).tolist() == arr.tolist()
        assert to_numpy(built.slice(3)).tolist() == arr[3:].tolist()  # offsets honoured
    chunked = pa.chunked_array([pa.array([1, 2], pa.int32()), pa.array([3], pa.int32())])
    assert to_numpy(chunked).tolist() == [1, 2, 3]
    with_nulls = pa.array([4, None, 6], pa.int32())
    assert to_numpy(with_nulls, fill=-1).tolist() == [4, -1, 6]
    with pytest.raises(ValueError):
        to_numpy(with_nulls)
    with pytest.raises(TypeError):
        numpy_array(np.zeros(2, dtype=np.float32))


def test_an_ingest_does_not_import_pandas(fixtures_dir, tmp_path):
    """pyarrow's list/numpy conversions import pandas (~0.5 CPU-s); the ingest path avoids them."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; from medrag.ingest import ingest; "
        f"ingest('pubmed', [{str(fixtures_dir / 'ingest' / 'pubmed')!r}], {str(tmp_path / 'c')!r}, progress=False); "
        "assert 'pandas' not in sys.modules, 'pandas was imported'"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
