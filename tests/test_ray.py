"""Issue 14: collection and evaluation on Ray. A local Ray cluster (2 CPUs, 2 actors) gives output
byte-identical to one process with the same seed, survives an actor killed mid-chunk, and passes
a chunk's bad input on as the one-line error a single process gives. One `ray.init` serves the
whole module (a cluster start costs seconds on a 2-core machine)."""
import json

import pytest

from rise.errors import InputError
from rise.ray_exec import RayConfig, actor_count

TINY = ["--threads", "1", "--quiet"]
RAY = ["--ray", "--ray.actors", "2"]


# (config, cluster resources, chunks to run, actors started) -- no cluster needed
@pytest.mark.parametrize("cfg, resources, wanted, expected", [
    (RayConfig(actors=2), {"CPU": 2.0}, 5, 2),
    (RayConfig(actors=0), {"CPU": 8.0}, 5, 5),                  # fill the cluster, one per chunk at most
    (RayConfig(actors=0, num_cpus=2), {"CPU": 8.0}, 9, 4),
    (RayConfig(actors=4), {"CPU": 2.0}, 9, 2),                  # no more than the cluster fits
    (RayConfig(actors=0, num_gpus=1), {"CPU": 16.0, "GPU": 2.0}, 9, 2),
    (RayConfig(actors=3), {"CPU": 2.0}, 1, 1),
])
def test_actor_count(cfg, resources, wanted, expected):
    assert actor_count(cfg, wanted, resources) == expected


@pytest.mark.parametrize("kwargs, needle", [
    ({"actors": -1}, "ray.actors"), ({"num_cpus": 0, "num_gpus": 0}, "not both 0"),
    ({"max_retries": -1}, "ray.max_retries"), ({"num_gpus": -1}, "ray.num_cpus and ray.num_gpus"),
])
def test_bad_ray_config_is_one_line(kwargs, needle):
    with pytest.raises(InputError, match=needle):
        RayConfig(**kwargs)


def test_no_room_for_an_actor_is_bad_input():
    with pytest.raises(InputError, match="no room for one actor"):
        actor_count(RayConfig(num_gpus=1), 3, {"CPU": 4.0})


def test_cli_ray_flags_set_the_ray_section(tmp_path):
    from rise.cli import _overrides, build_parser
    from rise.collect import CollectConfig
    from rise.config import resolve

    args = build_parser().parse_args(["collect", "--ray", "--ray_address", "10.0.0.1:6379", "--ray.actors", "3"])
    cfg = resolve(CollectConfig, None, _overrides(args))
    assert cfg.ray == RayConfig(enabled=True, address="10.0.0.1:6379", actors=3)
    assert resolve(CollectConfig, None, {}).ray.enabled is False


def test_ray_missing_is_the_install_line(monkeypatch, tmp_path, capsys):
    import sys

    from rise.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(["collect", "--policy", str(tmp_path), "--limit", "2", "--ray", "--quiet",
                 "--out", str(tmp_path / "o")]) == 2
    assert "--ray needs ray: pip install 'recursive-introspection[ray]'" in capsys.readouterr().err


def test_rise_run_gives_its_ray_section_to_collect_and_eval(tmp_path):
    from rise.config import ConfigError, resolve
    from rise.run import RunConfig, config_hash, eval_config, stage_configs

    cfg = resolve(RunConfig, None, {"ray.enabled": True, "ray.actors": 3, "ray.num_gpus": 1})
    col, _ = stage_configs(cfg, "some/model", 1, tmp_path)
    ev = eval_config(cfg, {"base": "some/model"})
    assert col.ray == ev.ray == cfg.ray == RayConfig(enabled=True, actors=3, num_gpus=1)
    # where the chunks run does not change them: a stage done with Ray is reused without, and back
    plain_col, _ = stage_configs(resolve(RunConfig, None, {}), "some/model", 1, tmp_path)
    assert config_hash(col) == config_hash(plain_col) and col != plain_col
    for key in ("collect.ray.enabled", "eval.ray.actors"):
        with pytest.raises(ConfigError, match=f"{key.rsplit('.', 1)[0]} is set by rise run; set ray instead"):
            resolve(RunConfig, None, {key: 2 if "actors" in key else True})


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    pytest.importorskip("torch")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def collect_args(model):
    return ["--policy", model, "--limit", "6", "--turns", "2", "--chunk_size", "2",
            "--sampling.max_new_tokens", "8", *TINY]


@pytest.fixture(scope="module")
def one_process_collect(tiny_model, tmp_path_factory):
    from rise.cli import main

    out = tmp_path_factory.mktemp("collect-one")
    assert main(["collect", *collect_args(tiny_model), "--out", str(out)]) == 0
    return (out / "rollouts.jsonl").read_bytes()


def test_collect_on_ray_is_byte_identical(cluster, tiny_model, one_process_collect, tmp_path):
    from rise.cli import main

    assert main(["collect", *collect_args(tiny_model), *RAY, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "rollouts.jsonl").read_bytes() == one_process_collect
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ray"] == {"actors": 2, "chunks": 3, "retried": 0, "nodes": 1}


def test_actor_killed_mid_chunk_is_restarted_and_its_chunk_redone(cluster, tiny_model, one_process_collect,
                                                                  tmp_path, monkeypatch):
    from rise.cli import main
    from rise.ray_exec import CRASH_ONCE_ENV

    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ONCE_ENV, str(marker))
    out = tmp_path / "out"
    assert main(["collect", *collect_args(tiny_model), *RAY, "--out", str(out)]) == 0
    assert marker.exists()  # an actor really died inside a chunk
    assert (out / "rollouts.jsonl").read_bytes() == one_process_collect
    stats = json.loads((out / "summary.json").read_text())["ray"]
    assert stats["retried"] >= 1 and stats["chunks"] == 3


def test_a_resumed_ray_collect_runs_only_the_missing_chunks(cluster, tiny_model, one_process_collect, tmp_path):
    """A driver killed after some chunks: the next run (on Ray) reads them from disk."""
    from rise.cli import main

    shard = ["--num_shards", "3", "--shard_index", "1", "--out", str(tmp_path)]
    assert main(["collect", *collect_args(tiny_model), *shard]) == 0   # chunk 1 only, in one process
    assert main(["collect", *collect_args(tiny_model), *RAY, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "rollouts.jsonl").read_bytes() == one_process_collect
    assert json.loads((tmp_path / "summary.json").read_text())["ray"]["chunks"] == 2


def eval_args(model):
    return ["--model", f"base={model}", "--model", f"other={model}", "--self_refine", "base",
            "--set", f"refiners={{glore: {model}}}", "--limit", "4", "--turns", "2", "--parallel", "2",
            "--chunk_size", "2", "--sampling.max_new_tokens", "8", *TINY]


def test_eval_on_ray_is_byte_identical(cluster, tiny_model, tmp_path):
    from rise.cli import main

    assert main(["eval", *eval_args(tiny_model), "--out", str(tmp_path / "one")]) == 0
    assert main(["eval", *eval_args(tiny_model), *RAY, "--out", str(tmp_path / "ray")]) == 0
    for name in ("episodes.jsonl", "report.json", "report.md", "grader_stats.json"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    # 4 rows (base, base+self-refine, other, glore) x 2 chunks
    stats = json.loads((tmp_path / "ray" / "ray.json").read_text())
    assert stats == {"actors": 2, "chunks": 8, "retried": 0, "nodes": 1}


def test_bad_input_inside_a_chunk_is_its_one_line_error_not_retried(cluster, tmp_path):
    from rise.ray_exec import EnginePool

    class BadProblem:  # a worker whose chunk 1 holds a bad problem (defined here: shipped by value)
        task = type("NoTask", (), {"grader_stats": {}})()

        def run(self, chunk):
            if chunk == 1:
                raise InputError(f"problem p{chunk}: improve=reference needs a reference solution")
            return [chunk]

    pool = EnginePool(BadProblem, RayConfig(actors=1, max_retries=1), wanted=1, progress=False)
    done = {}
    try:
        with pytest.raises(InputError, match="^problem p1: improve=reference needs a reference solution$"):
            pool.run([(0, (0,)), (1, (1,)), (2, (2,))], done.__setitem__)
    finally:
        pool.close()
    assert done == {0: [0]} and pool.stats["retried"] == 0


def test_a_chunk_that_kills_every_actor_is_retried_a_bounded_number_of_times(cluster):
    from rise.ray_exec import EnginePool

    class Crashing:  # a chunk that takes its process down every time (a segfaulting kernel, OOM)
        task = type("NoTask", (), {"grader_stats": {}})()

        def run(self, chunk):
            import os

            os._exit(1)

    pool = EnginePool(Crashing, RayConfig(actors=1, max_retries=1), wanted=1, progress=False)
    try:
        with pytest.raises(RuntimeError, match=r"chunk 0: its Ray actor died 2 times \(ray.max_retries=1\)"):
            pool.run([(0, (0,))], lambda key, result: None)
    finally:
        pool.close()
    assert pool.stats["retried"] == 2 and pool.stats["chunks"] == 0


def run_args(model):
    sets = ["collect.limit=4", "collect.turns=2", "collect.chunk_size=2", "collect.sampling.max_new_tokens=8",
            "train.max_steps=1", "eval.limit=4", "eval.turns=2", "eval.parallel=2", "eval.chunk_size=2",
            "eval.sampling.max_new_tokens=8", "classic=false", "glore=false", "self_refine=false"]
    return ["run", "--base", model, *TINY, *[x for s in sets for x in ("--set", s)]]


def test_rise_run_on_ray_gives_the_same_report(cluster, tiny_model, tmp_path):
    from rise.cli import main

    assert main([*run_args(tiny_model), "--out", str(tmp_path / "one")]) == 0
    assert main([*run_args(tiny_model), *RAY, "--out", str(tmp_path / "ray")]) == 0
    for name in ("iter1/collect/rollouts.jsonl", "eval/episodes.jsonl", "eval/report.json", "eval/report.md"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    assert json.loads((tmp_path / "ray/iter1/collect/summary.json").read_text())["ray"]["chunks"] == 2
    assert (tmp_path / "ray/eval/ray.json").is_file()
