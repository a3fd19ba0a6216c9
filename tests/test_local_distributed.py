"""Local training with several processes (``local.gpus > 1``) through accelerate's launcher.

On a CPU device ``local.gpus: 2`` means two CPU processes over gloo, so the whole
multi-process path -- worker -> accelerate launcher (torchrun) -> two ranks -> DDP -- runs
here without a GPU, on the random 2-layer model of tests/tiny_model.py:

* the plan: processes, strategy, effective batch, and the refusals (too many GPUs,
  DeepSpeed without its package, FSDP on CPU processes, FSDP + QLoRA, ...);
* the worker's side of the launch with a stand-in launcher (no torch): how the ranks'
  outcome becomes the job's state, and a stop before training kills the ranks;
* real 2-process runs through the tracked job: kill -9 of the worker takes the ranks
  along and ``jobs.resume`` continues from the checkpoint to an adapter that reloads and
  generates; a cancel stops both ranks after the same step with a checkpoint there.

FSDP is not run here: accelerate (1.15) turns FSDP on only for GPU process groups, so
with CPU processes the plan refuses it (torch's own FSDP2 does run over gloo, but the
Trainer cannot reach it on CPU).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import signal
import sys
import threading
import time
import types
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_model import local_backend_env, no_threads_left_behind, tiny  # noqa: F401  (fixtures)
from tiny_model import sft_records, wait_for, write_jsonl  # noqa: E402

from ftclient import jobs  # noqa: E402
from ftclient.errors import ConfigError, SpecError  # noqa: E402
from ftclient.local_backend import train as lt  # noqa: E402
from ftclient.local_backend import worker as w  # noqa: E402
from ftclient.paths import job_dir  # noqa: E402
from ftclient.spec import load_spec, parse_spec  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
CPU = lt.Devices()
FAST = jobs.PollPolicy(initial=0.3, factor=1.0, max_interval=0.3, events_every=1, timeout=180)


@pytest.fixture(autouse=True)
def _env(local_backend_env):
    yield


def spec_data(model: Path | str, *, n=8, epochs=1, batch_size=4, checkpoint_every=50, local=None, adapter="lora"):
    return {
        "name": "t", "base_model": str(model), "method": "sft", "adapter": adapter,
        "data": {"train": "train.jsonl"},
        "hyperparameters": {"epochs": epochs, "batch_size": batch_size, "max_seq_len": 128, "seed": 7,
                            "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
        "local": {"device": "cpu", "packing": False, "checkpoint_every": checkpoint_every, **(local or {})},
    }


def make_spec(tmp_path: Path, model: Path | str, *, n=8, **kw):
    write_jsonl(tmp_path / "train.jsonl", sft_records(n))
    return parse_spec(spec_data(model, n=n, **kw), base_dir=tmp_path)


# ----------------------------------------------------------------------------- plan

def test_plan_counts_processes_and_the_effective_batch(tmp_path):
    one = lt.make_plan(make_spec(tmp_path, "m", local={"gradient_accumulation_steps": 2}), devices=CPU)
    assert (one.num_processes, one.distributed) == (1, None)
    assert one.effective_batch_size == 8 and "processes" not in one.describe()
    assert re.search(r"^batch\s+4 x 2 accumulation = 8$", one.describe(), re.M)

    two = lt.make_plan(make_spec(tmp_path, "m", local={"gpus": 2, "gradient_accumulation_steps": 2}), devices=CPU)
    assert (two.num_processes, two.distributed, two.device) == (2, "ddp", "cpu")
    assert two.effective_batch_size == 4 * 2 * 2
    text = two.describe()
    assert "4 x 2 accumulation x 2 processes = 16" in text
    assert re.search(r"^processes\s+2 cpu processes \(gloo\), DDP", text, re.M)
    assert two.to_dict()["num_processes"] == 2 and two.to_dict()["distributed"] == "ddp"

    gpus = lt.Devices(cuda=True, cuda_bf16=True, cuda_name="H100", cuda_count=4)
    p = lt.make_plan(make_spec(tmp_path, "m", local={"device": "auto", "gpus": 4, "distributed": "fsdp"}), devices=gpus)
    assert (p.device, p.num_processes, p.distributed, p.effective_batch_size) == ("cuda", 4, "fsdp", 16)
    assert "4 GPUs (cuda, nccl), FSDP" in p.describe()

    # local.distributed without several processes: one process, and the plan says so
    solo = lt.make_plan(make_spec(tmp_path, "m", local={"distributed": "fsdp"}), devices=CPU)
    assert solo.num_processes == 1 and any("applies to several processes" in n for n in solo.notes)


def test_plan_refuses_what_cannot_run(tmp_path, monkeypatch):
    four = lt.Devices(cuda=True, cuda_bf16=True, cuda_name="A100", cuda_count=4)
    with pytest.raises(ConfigError) as e:
        lt.make_plan(make_spec(tmp_path, "m", local={"device": "cuda", "gpus": 8}), devices=four)
    assert "local.gpus is 8, but this machine has 4 CUDA GPUs" in e.value.message
    assert "local.gpus: 4" in e.value.hint and "--gpus 4" in e.value.hint
    with pytest.raises(ConfigError, match="has 1 CUDA GPU"):  # cuda without a count is one GPU
        lt.make_plan(make_spec(tmp_path, "m", local={"device": "cuda", "gpus": 2}), devices=lt.Devices(cuda=True))
    with pytest.raises(ConfigError, match="Metal backend runs one process"):
        lt.make_plan(make_spec(tmp_path, "m", local={"device": "mps", "gpus": 2}), devices=lt.Devices(mps=True))
    with pytest.raises(ConfigError, match="fsdp needs CUDA GPUs") as e:
        lt.make_plan(make_spec(tmp_path, "m", local={"gpus": 2, "distributed": "fsdp"}), devices=CPU)
    assert "distributed: ddp" in e.value.hint

    # DeepSpeed: the package first (whether or not it is installed here), then CUDA, then its config file
    real_find_spec = importlib.util.find_spec
    ds = {"local": {"device": "auto", "gpus": 2, "distributed": "deepspeed", "deepspeed_config": "ds.json"}}
    monkeypatch.setattr(lt.importlib.util, "find_spec",
                        lambda name, *a: None if name == "deepspeed" else real_find_spec(name, *a))
    with pytest.raises(ConfigError) as e:
        lt.make_plan(make_spec(tmp_path, "m", **ds), devices=four)
    assert "needs the deepspeed package" in e.value.message and "pip install deepspeed" in e.value.hint
    monkeypatch.setattr(lt.importlib.util, "find_spec",
                        lambda name, *a: object() if name == "deepspeed" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match="deepspeed needs CUDA GPUs; this run would use cpu"):
        lt.make_plan(make_spec(tmp_path, "m", **ds), devices=CPU)
    with pytest.raises(ConfigError, match="deepspeed_config: .*ds.json is not a file"):
        lt.make_plan(make_spec(tmp_path, "m", **ds), devices=four)
    (tmp_path / "ds.json").write_text('{"zero_optimization": {"stage": 2}}')
    p = lt.make_plan(make_spec(tmp_path, "m", **ds), devices=four)
    assert p.distributed == "deepspeed" and p.deepspeed_config == str(tmp_path / "ds.json")
    assert "DeepSpeed (ds.json)" in p.describe()

    # FSDP + QLoRA (bitsandbytes faked as installed, so the QLoRA checks pass and ours is reached)
    monkeypatch.setitem(sys.modules, "bitsandbytes", types.ModuleType("bitsandbytes"))
    q = {"adapter": "qlora", "local": {"device": "cuda", "gpus": 2, "distributed": "fsdp"}}
    with pytest.raises(ConfigError, match="fsdp with adapter: qlora is not supported") as e:
        lt.make_plan(make_spec(tmp_path, "m", **q), devices=four)
    assert "distributed: ddp" in e.value.hint
    q["local"]["distributed"] = "ddp"
    assert lt.make_plan(make_spec(tmp_path, "m", **q), devices=four).num_processes == 2


def test_spec_keys(tmp_path):
    with pytest.raises(SpecError, match="deepspeed_config is required with distributed: deepspeed"):
        parse_spec(spec_data("m", local={"gpus": 2, "distributed": "deepspeed"}))
    with pytest.raises(SpecError, match="did you mean 'local.distributed'"):
        parse_spec(spec_data("m", local={"distributd": "fsdp"}))
    with pytest.raises(SpecError, match="local.distributed: Input should be 'ddp', 'fsdp' or 'deepspeed'"):
        parse_spec(spec_data("m", local={"distributed": "zero3"}))
    with pytest.raises(SpecError, match="local.gpus"):
        parse_spec(spec_data("m", local={"gpus": 0}))
    # deepspeed_config is relative to the spec file, like the data
    (tmp_path / "cfg").mkdir()
    data = spec_data("m", local={"gpus": 2, "distributed": "deepspeed", "deepspeed_config": "cfg/ds.json"})
    (tmp_path / "job.yaml").write_text(json.dumps(data))  # (JSON is YAML)
    assert load_spec(tmp_path / "job.yaml").local.deepspeed_config == (tmp_path / "cfg" / "ds.json").resolve()


def test_training_arguments_for_several_processes(tmp_path, monkeypatch):
    out = tmp_path / "out"
    single = lt._training_args(lt.make_plan(make_spec(tmp_path, "m"), devices=CPU), out, False)
    assert not {"ddp_backend", "ddp_find_unused_parameters", "fsdp", "deepspeed"} & set(single)
    ddp = lt._training_args(lt.make_plan(make_spec(tmp_path, "m", local={"gpus": 2}), devices=CPU), out, False)
    assert ddp["ddp_backend"] == "gloo" and ddp["ddp_find_unused_parameters"] is False and ddp["use_cpu"]
    four = lt.Devices(cuda=True, cuda_bf16=True, cuda_count=4)
    fsdp = lt._training_args(lt.make_plan(make_spec(tmp_path, "m", local={"device": "cuda", "gpus": 4,
                                                                          "distributed": "fsdp"}), devices=four), out, False)
    assert fsdp["fsdp"] is True and fsdp["fsdp_config"]["version"] == 2 and fsdp["ddp_backend"] is None
    assert fsdp["fsdp_config"]["state_dict_type"] == "FULL_STATE_DICT"
    monkeypatch.setattr(lt.importlib.util, "find_spec", lambda name, *a: object())
    (tmp_path / "ds.json").write_text("{}")
    ds = lt.make_plan(make_spec(tmp_path, "m", local={"device": "cuda", "gpus": 2, "distributed": "deepspeed",
                                                       "deepspeed_config": "ds.json"}), devices=four)
    assert lt._training_args(ds, out, False)["deepspeed"] == str(tmp_path / "ds.json")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert lt._load_device(ds) == "cuda:3"  # each rank loads the model onto its own GPU
    assert lt._load_device(lt.make_plan(make_spec(tmp_path, "m"), devices=CPU)) == "cpu"


def test_train_cli_gpus_flag(tmp_path, ftc, tiny):
    write_jsonl(tmp_path / "train.jsonl", sft_records(8))
    (tmp_path / "job.yaml").write_text(json.dumps(spec_data(tiny, local={"distributed": "fsdp"})))
    r = ftc("train", tmp_path / "job.yaml", "--backend", "local", "--gpus", "2", "--dry-run")
    assert r.code == 2 and "fsdp needs CUDA GPUs" in r.err  # --gpus reached the plan: 2 CPU processes
    r = ftc("train", tmp_path / "job.yaml", "--backend", "local", "--gpus", "1", "--dry-run", "--json")
    assert r.code == 0 and any("applies to several processes" in x for x in r.json()["plan"]["warnings"])
    r = ftc("train", tmp_path / "job.yaml", "--backend", "openai", "--gpus", "2", "--dry-run")
    assert r.code == 2 and "--gpus applies to --backend local" in r.err
    r = ftc("train", tmp_path / "job.yaml", "--backend", "local", "--gpus", "0", "--dry-run")
    assert r.code == 2


# ----------------------------------------------------------------------------- the worker's side, stand-in ranks

def test_launch_command_and_accelerate_config(tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    plan = lt.make_plan(make_spec(tmp_path, "m", local={"gpus": 2}), devices=CPU)
    port = w.free_port()
    assert 0 < port < 65536
    cfg_file = tmp_path / w.ACCELERATE_CONFIG_FILE
    w.write_json(cfg_file, w.accelerate_config(plan, port))
    cfg = load_config_from_file(str(cfg_file))  # accelerate's own reader takes it
    assert (cfg.num_processes, cfg.main_process_port, cfg.mixed_precision) == (2, port, "no")
    cmd = w.launch_command(tmp_path, plan, port, cfg_file, threads=1)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    args = " ".join(cmd)
    assert "--multi_gpu --num_processes 2" in args and f"--main_process_port {port}" in args
    assert cmd[-4:] == ["--module", "ftclient.local_backend.worker", "--rank", str(tmp_path)]


FAKE_RANKS = """\
import json, os, sys, time, subprocess
job = sys.argv[1]
ranks = os.path.join(job, "ranks")
def put(name, data):
    with open(os.path.join(ranks, name + ".tmp"), "w") as f:
        json.dump(data, f)
    os.replace(os.path.join(ranks, name + ".tmp"), os.path.join(ranks, name))
mode = os.environ["FAKE_MODE"]
res = {"completed": True, "steps": 6, "max_steps": 6, "model_dir": os.path.join(job, "output", "final"),
       "merged_dir": None, "final_loss": 1.5, "train_loss": 2.0, "eval_loss": None, "tokens_seen": 99,
       "resumed_from": None, "last_checkpoint": os.path.join(job, "output", "checkpoint-6"),
       "plan": {"num_processes": 2}}
if mode == "ok":
    put("outcome.json", res)
elif mode == "stopped":
    put("outcome.json", dict(res, completed=False, steps=3, last_checkpoint=os.path.join(job, "output", "checkpoint-3")))
elif mode == "errors":
    put("rank-1.error.json", {"rank": 1, "error": "DataError: first", "at": 100.0})
    put("rank-0.error.json", {"rank": 0, "error": "RuntimeError: gloo connection closed", "at": 101.0})
    sys.exit(1)
elif mode == "hang":  # a rank that never gets to training
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    with open(os.path.join(ranks, "rank-1.pid"), "w") as f:
        f.write(str(child.pid))
    with open(os.path.join(ranks, "rank-0.pid"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


@pytest.fixture
def fake_launch(tmp_path, monkeypatch):
    script = tmp_path / "fake_ranks.py"
    script.write_text(FAKE_RANKS)
    monkeypatch.setattr(w, "launch_command", lambda job, plan, port, cfg, threads: [sys.executable, str(script), str(job)])

    def run(mode: str, *, exit_code: int = 0, stop_when=None):
        monkeypatch.setenv("FAKE_MODE", mode)
        monkeypatch.setenv("FAKE_EXIT", str(exit_code))
        d = tmp_path / f"job-{mode}"
        d.mkdir()
        rep = w.Reporter(d)
        rep.update(state="queued")
        plan = lt.make_plan(make_spec(tmp_path, "m", local={"gpus": 2}), devices=CPU)
        stopper = None
        if stop_when is not None:  # what the worker's SIGTERM handler does: set the flag
            def stop():
                deadline = time.monotonic() + 20
                while not stop_when(d) and time.monotonic() < deadline:
                    time.sleep(0.02)
                rep.stop_requested = True
            stopper = threading.Thread(target=stop)
            stopper.start()
        rc = w._run_ranks(d, rep, plan, {}, time.monotonic())
        if stopper is not None:
            stopper.join()
        return rc, d

    return run


def _events(d: Path) -> list[dict]:
    p = d / w.EVENTS_FILE
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []


def test_rank_outcome_becomes_the_job_state(fake_launch):
    rc, d = fake_launch("ok")
    prog = w.read_json(d / w.PROGRESS_FILE)
    res = w.read_json(d / w.RESULT_FILE)
    assert rc == 0 and prog["state"] == "succeeded" and prog["step"] == 6 and prog["pid"] == os.getpid()
    assert res["adapter_dir"] == str(d / "output" / "final") and res["processes"] == 2 and res["final_loss"] == 1.5
    evs = _events(d)
    assert evs[0]["data"]["type"] == "launched" and evs[0]["data"]["processes"] == 2
    assert evs[-1]["data"]["type"] == "succeeded"
    cfg = w.read_json(d / w.ACCELERATE_CONFIG_FILE)
    assert cfg["num_processes"] == 2 and cfg["main_process_port"] == evs[0]["data"]["port"]

    rc, d = fake_launch("stopped")
    assert rc == 0 and w.read_json(d / w.PROGRESS_FILE)["state"] == "cancelled"
    assert "checkpoint checkpoint-3 kept" in _events(d)[-1]["message"] and not (d / w.RESULT_FILE).exists()


def test_failed_ranks_fail_the_job_with_the_first_error(fake_launch):
    rc, d = fake_launch("errors", exit_code=1)
    prog = w.read_json(d / w.PROGRESS_FILE)
    assert rc == 1 and prog["state"] == "failed" and prog["error"] == "DataError: first"
    assert _events(d)[-1]["level"] == "error"

    rc, d = fake_launch("nothing", exit_code=3)
    prog = w.read_json(d / w.PROGRESS_FILE)
    assert rc == 1 and prog["state"] == "failed" and "without a result (launcher exit code 3)" in prog["error"]


def test_stop_before_training_kills_launcher_and_ranks(fake_launch):
    from ftclient.store import pid_running

    def two_ranks_up(d: Path) -> bool:
        return len(list((d / w.RANKS_DIR).glob("rank-*.pid"))) == 2

    t0 = time.monotonic()
    rc, d = fake_launch("hang", stop_when=two_ranks_up)
    assert rc == 0 and time.monotonic() - t0 < 15
    assert w.read_json(d / w.PROGRESS_FILE)["state"] == "cancelled"
    assert _events(d)[-1]["message"] == "cancelled before training started"
    pids = [int(p.read_text()) for p in (d / w.RANKS_DIR).glob("rank-*.pid")]
    assert len(pids) == 2 and not any(pid_running(p) for p in pids)


# ----------------------------------------------------------------------------- real runs: 2 CPU processes

def _progress(d: Path) -> dict:
    return w.read_json(d / w.PROGRESS_FILE) or {}


_wait = functools.partial(wait_for, timeout=120.0)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _rank_pids(d: Path) -> list[int]:
    return [int(p.read_text()) for p in (d / w.RANKS_DIR).glob("rank-*.pid")]


def _world_lines(log: str) -> list[str]:
    return re.findall(r"rank (\d): world size (\d+), backend gloo", log)


def test_two_processes_kill9_then_resume_to_a_working_adapter(tmp_path, tiny):
    """2 ranks (DDP over gloo); kill -9 of the worker mid-run takes both ranks along;
    `jobs.resume` restarts it and the ranks continue from the checkpoint to the end."""
    from ftclient.store import pid_running

    # 32 records / (batch 1 x 2 processes) x 3 epochs = 48 steps; a checkpoint every 4
    spec = make_spec(tmp_path, tiny, n=32, epochs=3, batch_size=1, checkpoint_every=4, local={"gpus": 2})
    job = jobs.submit(spec, "local")
    d = job_dir(job.id)
    pid = w.read_json(d / w.WORKER_FILE)["pid"]

    def ckpt_passed():
        s = w.last_checkpoint_step(d / w.OUTPUT_DIR)
        return s is not None and (_progress(d).get("step") or 0) > s and s

    _wait(ckpt_passed, what="a checkpoint")
    ranks = _rank_pids(d)
    assert len(ranks) == 2 and all(pid_running(p) for p in ranks)
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: (_reap(pid), not pid_running(pid))[1], timeout=10, what="the worker to die")
    _wait(lambda: not any(pid_running(p) for p in ranks), timeout=10, what="the ranks to die with the worker")
    killed_at = _progress(d)["step"]
    assert killed_at < 48 and _progress(d)["state"] == "running"

    outcomes = jobs.resume(job.id, poll=FAST)
    log = (d / w.LOG_FILE).read_text()
    assert [(o.action, o.state) for o in outcomes] == [("watched", "succeeded")], log[-4000:]
    evs = [json.loads(x) for x in (d / w.EVENTS_FILE).read_text().splitlines()]
    [restart] = [e for e in evs if e["data"].get("type") == "restarted"]
    n = restart["data"]["checkpoint_step"]
    assert n is not None and n >= 4 and n % 4 == 0
    [resumed] = [e for e in evs if e["data"].get("type") == "resumed"]
    assert resumed["data"]["step"] == n  # the new ranks continue from the checkpoint
    steps_after = [e["data"]["step"] for e in evs[evs.index(resumed):] if e["data"].get("type") == "metrics"]
    assert steps_after[0] == n + 1 and steps_after[-1] == 48
    launched = [e for e in evs if e["data"].get("type") == "launched"]
    assert len(launched) == 2 and all(e["data"]["processes"] == 2 for e in launched)
    # both sessions ran two ranks in one gloo group of size 2; only rank 0 reported
    world = _world_lines(log)
    assert sorted(world) == [("0", "2"), ("0", "2"), ("1", "2"), ("1", "2")]
    assert [e["data"]["type"] for e in evs].count("started") == 1

    res = w.read_json(d / w.RESULT_FILE)
    assert res["processes"] == 2 and res["steps"] == 48 and res["resumed_from"].endswith(f"checkpoint-{n}")
    stored = jobs.show(job.id, refresh_status=False).job
    assert stored.state == "succeeded" and stored.fine_tuned_model == res["adapter_dir"]
    adapter = Path(res["adapter_dir"])
    assert (adapter / "adapter_model.safetensors").is_file() and not (adapter / "training_args.bin").exists()
    meta = json.loads((adapter / lt.META_FILE).read_text())
    assert meta["plan"]["num_processes"] == 2 and meta["steps"] == 48

    from peft import PeftModel

    model, tok = lt.load_for_inference(adapter, device="cpu")
    assert isinstance(model, PeftModel)
    outs = lt.generate(model, tok, [r["messages"][:2] for r in sft_records(2)], max_new_tokens=4)
    assert len(outs) == 2 and all(isinstance(o, str) for o in outs)


def test_cancel_stops_both_ranks_after_the_same_step(tmp_path, tiny):
    from ftclient.store import pid_running

    # 24 records / (batch 1 x 2 processes) x 5 epochs = 60 steps; no periodic checkpoint
    spec = make_spec(tmp_path, tiny, n=24, epochs=5, batch_size=1, checkpoint_every=1000, local={"gpus": 2})
    job = jobs.submit(spec, "local")
    d = job_dir(job.id)
    pid = w.read_json(d / w.WORKER_FILE)["pid"]
    _wait(lambda: (_progress(d).get("step") or 0) >= 1, what="training to start")
    ranks = _rank_pids(d)
    done = jobs.cancel(job.id)
    _reap(pid)
    log = (d / w.LOG_FILE).read_text()
    assert done.state == "cancelled", log[-3000:]
    prog = _progress(d)
    stopped = prog["step"]
    assert prog["state"] == "cancelled" and 1 <= stopped < 60
    assert w.last_checkpoint_step(d / w.OUTPUT_DIR) == stopped  # one checkpoint, where both ranks stopped
    assert sorted(re.findall(r"rank (\d) done: step (\d+)/60", log)) == [("0", str(stopped)), ("1", str(stopped))]
    ckpt = d / w.OUTPUT_DIR / f"checkpoint-{stopped}"
    assert (ckpt / "rng_state_0.pth").is_file() and (ckpt / "rng_state_1.pth").is_file()  # one per rank
    assert not (d / w.RESULT_FILE).exists()
    assert len(ranks) == 2 and not any(pid_running(p) for p in ranks) and not pid_running(pid)
    assert "all ranks stop after step" in log
