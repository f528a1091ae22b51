"""Ray Data's default block count inside steps (air.raydata): applied when ray.data is
imported (no import cost for steps that never use it), kept when the user set one."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from airflowdsl.air.raydata import RAY_DEFAULT_MIN_BLOCKS, min_blocks


def test_min_blocks_scales_with_the_cluster() -> None:
    assert min_blocks(0) == 4
    assert min_blocks(2) == 4
    assert min_blocks(16) == 32
    assert min_blocks(1000) == RAY_DEFAULT_MIN_BLOCKS


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_applied_when_ray_data_is_imported_and_a_user_value_kept() -> None:
    got = _run("""
        import sys
        from airflowdsl.air import raydata
        raydata.size_for_cluster(lambda: 3.0)
        assert "ray.data" not in sys.modules  # binding a step imports nothing heavy
        import ray.data
        ctx = ray.data.DataContext.get_current()
        print(ctx.read_op_min_num_blocks)
        raydata.size_for_cluster(lambda: 2.0)  # the next step, on a smaller cluster
        print(ctx.read_op_min_num_blocks)
        ctx.read_op_min_num_blocks = 50  # the user's own choice
        raydata.size_for_cluster(lambda: 2.0)
        print(ctx.read_op_min_num_blocks)
    """)
    assert got.split() == ["6", "4", "50"]
