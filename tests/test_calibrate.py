"""Calibrated local estimates (ftclient.local_backend.calibrate, `ftc cost estimate --calibrate`).

On the random 2-layer model of tests/tiny_model.py: the step count against the Trainer's own
``max_steps``, a real short calibration (timings, a prediction whose parts add up, cost =
hours x price, the cache), the CLI with --json, and the offline path without torch.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_model import no_threads_left_behind  # noqa: F401,E402  (fixture)
from tiny_model import SYSTEM, TICKETS, build_tiny_model, sft_records, write_jsonl  # noqa: E402

from ftclient.local_backend import calibrate as cal_mod  # noqa: E402
from ftclient.local_backend import models as lm  # noqa: E402
from ftclient.local_backend import train as lt  # noqa: E402
from ftclient import tokens  # noqa: E402
from ftclient.spec import parse_spec  # noqa: E402

CPU = lt.Devices()
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    """One FTC_HOME for the module (the calibration cache lives there), offline."""
    with pytest.MonkeyPatch.context() as mp:
        d = tmp_path_factory.mktemp("ftc-home")
        mp.setenv("FTC_HOME", str(d))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield d


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    lm.quiet_offline_libraries()
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def make_spec(d: Path, model: Path, *, records=None, n=12, hp=None, local=None, eval_records=None):
    d.mkdir(parents=True, exist_ok=True)
    write_jsonl(d / "train.jsonl", records if records is not None else sft_records(n))
    data = {"train": "train.jsonl"}
    if eval_records is not None:
        write_jsonl(d / "eval.jsonl", eval_records)
        data["eval"] = "eval.jsonl"
    spec = {
        "name": "t", "base_model": str(model), "method": "sft", "adapter": "lora", "data": data,
        "hyperparameters": {"epochs": 1, "batch_size": 4, "max_seq_len": 128, "seed": 7,
                            "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, **(hp or {})},
        "local": {"device": "cpu", "packing": False, "checkpoint_every": 50, **(local or {})},
    }
    return parse_spec(spec, base_dir=d)


# A ChatML template with a default system prompt, as SmolLM2's (uses loop.first and a default).
SYSTEM_DEFAULT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class _Stop(Exception):
    pass


def trainer_max_steps(trainer) -> int:
    """The Trainer's own max_steps: start train() and stop it before the first step."""
    from transformers import TrainerCallback

    seen = {}

    class Grab(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            seen["max_steps"] = state.max_steps
            raise _Stop

    trainer.add_callback(Grab())
    with pytest.raises(_Stop):
        trainer.train()
    return seen["max_steps"]


# ----------------------------------------------------------------------------- counting

def test_default_batch_size_is_the_trainers():
    assert cal_mod.DEFAULT_BATCH_SIZE == lt.DEFAULT_BATCH_SIZE


@pytest.mark.parametrize("n, batch, accum, epochs, drop_last", [
    (12, 4, 1, 1, False),
    (13, 4, 1, 2, False),   # a short last batch
    (13, 4, 2, 3, False),   # 4 micro-batches / 2 accumulation, 3 epochs
    (10, 3, 4, 2, False),   # accumulation longer than the epoch's remainder
    (13, 4, 1, 2, True),    # drop_last drops the short batch
    (5, 8, 1, 3, False),    # one partial batch per epoch
])
def test_step_count_equals_the_trainers(tmp_path, tiny, n, batch, accum, epochs, drop_last):
    spec = make_spec(tmp_path, tiny, n=n, hp={"batch_size": batch, "epochs": epochs},
                     local={"gradient_accumulation_steps": accum})
    trainer = lt.build_trainer(spec, output_dir=tmp_path / "out", plan=lt.make_plan(spec, devices=CPU))
    trainer.args.dataloader_drop_last = drop_last
    rows = len(trainer.train_dataset)
    assert rows == n
    ours = cal_mod.count_optimizer_steps(rows, batch, accum, epochs, drop_last=drop_last)
    assert ours == trainer_max_steps(trainer)
    if not drop_last:  # the offline count (no trainer) agrees too
        assert cal_mod.offline_counts(spec).rows == n


def test_offline_counts_equal_the_trainers_rows_and_tokens(tmp_path, tiny):
    """Truncation and TRL's drop of rows whose prompt fills max_seq_len, counted without torch."""
    recs = []
    for i, (text, label, _) in enumerate(TICKETS):
        # short; a long reply (truncated); a prompt longer than max_seq_len (dropped)
        user = " ".join([text] * (8 if i % 3 == 2 else 1))
        reply = " ".join([label] * (12 if i % 3 == 1 else 1))
        recs.append({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user},
                                  {"role": "assistant", "content": reply}]})
    spec = make_spec(tmp_path, tiny, records=recs, hp={"max_seq_len": 64})
    off = cal_mod.offline_counts(spec)
    trainer = lt.build_trainer(spec, output_dir=tmp_path / "out", plan=lt.make_plan(spec, devices=CPU))
    ds = trainer.train_dataset
    assert 0 < off.rows < len(recs), "the data should have rows TRL drops"
    assert off.exact and "exact" in off.basis and "dropped" in off.basis
    assert off.rows == len(ds)
    assert off.tokens_per_epoch == sum(min(len(x), 64) for x in ds["input_ids"])
    assert any(len(x) >= 64 for x in ds["input_ids"]), "the data should have truncated rows"


def test_light_tokenizer_renders_and_counts_like_transformers(tiny, tmp_path):
    from transformers import AutoTokenizer

    for template in (None, SYSTEM_DEFAULT_TEMPLATE):
        folder = tiny
        if template is not None:
            folder = tmp_path / "tpl"
            tok = AutoTokenizer.from_pretrained(str(tiny))
            tok.chat_template = template
            tok.save_pretrained(folder)
        ref = AutoTokenizer.from_pretrained(str(folder))
        light = tokens.LightTokenizer(folder)
        for msgs in lm.PROBE_CONVERSATIONS:
            for gp in (False, True):
                want = ref.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gp)
                got = light.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gp)
                assert got == want
                assert light([got])["input_ids"][0] == ref(want, add_special_tokens=False)["input_ids"]


# ----------------------------------------------------------------------------- a real calibration

PRICE = 1.5


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, tiny):
    d = tmp_path_factory.mktemp("calib")
    spec = make_spec(d, tiny, n=30, eval_records=sft_records(6),
                     hp={"epochs": 2, "max_seq_len": 64},
                     local={"checkpoint_every": 3, "gpu_price_per_hour": PRICE})
    phases = []
    cal = cal_mod.calibrate(spec, steps=3, devices=CPU, progress=lambda p, done, total: phases.append((p, done, total)))
    return spec, cal, phases


def test_calibration_measures_each_part(calibrated):
    spec, cal, phases = calibrated
    m = cal.measured
    assert cal.device == "cpu" and cal.precision == "fp32" and "CPU" in cal.device_name
    assert cal.calibration_steps == 3 and len(m.step_seconds) == 3 and len(m.step_tokens) == 3
    for v in (m.model_load_s, m.trainer_build_s, m.trainer_start_s, m.checkpoint_save_s, m.eval_s, m.final_save_s,
              *m.step_seconds):
        assert v is not None and v > 0
    assert all(x > 0 for x in m.step_tokens)
    assert m.warmup_used == 1 and m.seconds_per_step == pytest.approx(sum(m.step_seconds[1:]) / 2)
    assert ("step", 3, 3) in phases and any(p[0] == "loading the model" for p in phases)
    # nothing left behind in the cache directory but the calibration itself
    assert [p.name for p in cal_mod.cache_dir().iterdir() if p.name.startswith(".run-")] == []


def test_calibration_counts_the_full_run_as_the_trainer_will(calibrated):
    spec, cal, _ = calibrated
    p, c = cal.prediction, cal.counts
    assert c.examples == 30 and c.rows == 30 and c.eval_examples == 6
    assert p.optimizer_steps == cal_mod.count_optimizer_steps(30, 4, 1, 2) == 16
    assert p.checkpoint_saves == math.ceil(16 / 3) and p.evaluations == p.checkpoint_saves + 1
    assert p.tokens == 2 * c.tokens_per_epoch
    # the torch-free count of the same data gives the trainer's own tokens
    assert cal_mod.offline_counts(spec).tokens_per_epoch == c.tokens_per_epoch


def test_prediction_parts_add_up(calibrated):
    _, cal, _ = calibrated
    p, m = cal.prediction, cal.measured
    assert sum(p.parts().values()) == pytest.approx(p.total_s)
    assert p.setup_s == pytest.approx(m.imports_s + m.model_load_s + m.trainer_build_s + m.trainer_start_s)
    assert p.warmup_s == pytest.approx(m.step_seconds[0])
    # the rest of the run: the remaining token positions fed (padding included) x steady s/position
    c = cal.counts
    assert len(m.step_positions) == 3 and all(x >= t > 0 for x, t in zip(m.step_positions, m.step_tokens))
    assert c.positions_per_epoch >= c.tokens_per_epoch
    remaining = c.positions_per_epoch * 2 - sum(m.step_positions)
    assert m.seconds_per_position == pytest.approx(sum(m.step_seconds[1:]) / sum(m.step_positions[1:]))
    assert p.steps_s == pytest.approx(sum(m.step_seconds[1:]) + remaining * m.seconds_per_position)
    assert "positions" in p.steps_basis
    assert p.checkpoints_s == pytest.approx(p.checkpoint_saves * m.checkpoint_save_s)
    assert p.evaluations_s == pytest.approx(p.evaluations * m.eval_s)


def test_cost_is_hours_times_price(calibrated):
    _, cal, _ = calibrated
    assert cal.price["usd_per_hour"] == PRICE
    assert cal.cost_usd == pytest.approx(cal.prediction.total_s / 3600 * PRICE)
    from ftclient.cost import local_training_cost

    hourly = local_training_cost(1800, {"usd_per_hour": 2.0, "billing": "hourly"})
    assert hourly["billed_hours"] == 1 and hourly["cost_usd"] == 2.0
    exact = local_training_cost(1800, {"usd_per_hour": 2.0, "billing": "exact"})
    assert exact["cost_usd"] == pytest.approx(1.0)


def test_cache_is_reused_and_repredicted(calibrated, tmp_path, tiny):
    spec, cal, _ = calibrated
    again = cal_mod.load_cached(spec)
    assert again is not None and again.key == cal.key
    assert again.prediction.total_s == pytest.approx(cal.prediction.total_s)
    more = cal_mod.load_cached(parse_spec({**spec.model_dump(mode="json"),
                                           "hyperparameters": {**spec.hyperparameters.model_dump(), "epochs": 4}}))
    assert more.prediction.optimizer_steps == 32 and more.prediction.total_s > cal.prediction.total_s
    other = make_spec(tmp_path, tiny, n=31, hp={"epochs": 2, "max_seq_len": 64})
    assert cal_mod.load_cached(other) is None


def test_local_backend_estimate_uses_the_calibration(calibrated, tmp_path, tiny):
    from ftclient.local_backend.backend import LocalBackend

    spec, cal, _ = calibrated
    est = LocalBackend().estimate(spec)
    assert est.duration_s == pytest.approx(cal.prediction.total_s)
    assert est.cost_usd == pytest.approx(round(cal.prediction.total_s / 3600 * PRICE, 4))
    assert est.token_count_exact and est.tokens_per_epoch == cal.counts.tokens_per_epoch
    assert est.optimizer_steps == 16
    # not calibrated: the time is unknown, so is the cost at a price; $0 without one
    unknown = make_spec(tmp_path, tiny, n=9, local={"gpu_price_per_hour": PRICE})
    e2 = LocalBackend().estimate(unknown)
    assert e2.duration_s is None and e2.cost_usd is None and "unknown" in e2.time_basis
    assert any("--calibrate" in c for c in e2.caveats)
    e3 = LocalBackend().estimate(make_spec(tmp_path / "free", tiny, n=9))
    assert e3.cost_usd == 0.0 and e3.examples == 9 and e3.billed_tokens > 0


def test_cost_compare_has_this_machines_row(calibrated, tmp_path, tiny):
    from ftclient.cost import compare_costs

    spec, cal, _ = calibrated
    hours = cal.prediction.total_s / 3600
    cmp = compare_costs(spec.data.train, ["openai:gpt-4.1-mini", f"local:{tiny}"], epochs=2, spec=spec)
    hosted, local = cmp.rows
    assert (hosted.kind, local.kind, local.backend) == ("hosted", "local", f"local:{tiny}")
    assert local.duration_hours == pytest.approx(hours)
    assert local.training_cost_usd == pytest.approx(hours * PRICE, rel=1e-3)  # the spec's local price
    assert local.billed_tokens == cal.prediction.tokens and local.token_count_exact
    assert local.inference_per_1k_usd is None and local.break_even_queries_per_month is None
    assert "ftc eval" in local.inference_basis
    given = compare_costs(spec.data.train, [f"local:{tiny}"], epochs=2, spec=spec, local_usd_per_hour=4.0).rows[0]
    assert given.training_cost_usd == pytest.approx(hours * 4.0, rel=1e-3)
    # other data, not calibrated: the time is unknown and the row says how to measure it
    other = make_spec(tmp_path, tiny, n=9, hp={"epochs": 2, "max_seq_len": 64})
    records = [json.loads(x) for x in other.data.train.read_text().splitlines() if x.strip()]
    row = compare_costs(records, [f"local:{tiny}"], epochs=2, local_usd_per_hour=4.0).rows[0]
    assert row.duration_hours is None and row.training_cost_usd is None and row.within_budget is None
    assert any("--calibrate" in c for c in row.caveats)
    d = cmp.to_dict()["rows"][1]
    assert d["kind"] == "local" and d["training_cost_usd"] == pytest.approx(hours * PRICE, abs=1e-4)  # rounded


def test_cost_compare_cli_with_a_local_row(calibrated, tiny, ftc, tmp_path):
    import yaml

    spec, cal, _ = calibrated
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    r = ftc("cost", "compare", "--spec", str(job), "--models", f"openai:gpt-4.1-mini,local:{tiny}",
            "--gpu-price-per-hour", "2", "--json", "--plot", str(tmp_path / "c.png"))
    assert r.code == 0, r.err
    rows = {x["kind"]: x for x in r.json()["rows"]}
    assert rows["local"]["training_cost_usd"] == pytest.approx(cal.prediction.total_s / 3600 * 2, abs=1e-4)
    assert (tmp_path / "c.png").stat().st_size > 1000
    r = ftc("cost", "compare", "--spec", str(job), "--models", f"local:{tiny}")
    assert r.code == 0 and "this machine" in r.out and "~" in r.out  # a calibrated time
    r = ftc("cost", "compare", str(spec.data.train), "--models", "local:./no-such-model")
    assert r.code != 0 and "not found" in r.err


def test_predict_with_the_whole_run_measured_and_dpo_steps():
    m = cal_mod.Measurements(imports_s=1, imports_measured=True, model_load_s=1, trainer_build_s=1, trainer_start_s=1,
                             step_seconds=[5.0, 2.0, 2.0, 2.0], step_tokens=[100, 100, 100, 100], warmup_steps=1,
                             checkpoint_save_s=0.5, eval_s=None, final_save_s=0.25, finish_s=0.25)
    counts = cal_mod.DataCounts(examples=12, rows=12, tokens_per_epoch=300, basis="x")
    s = cal_mod.Settings(method="sft", adapter="lora", base_model="m", device="cpu", precision="fp32",
                         model_dtype="fp32", batch_size=4, gradient_accumulation_steps=1, epochs=1, max_seq_len=64,
                         packing=False, gradient_checkpointing=False, save_steps=2)
    p = cal_mod.predict(m, counts, s)  # 3 steps, all measured
    assert p.optimizer_steps == 3 and p.warmup_s == 5.0 and p.steps_s == 4.0 and p.checkpoint_saves == 2
    assert p.total_s == pytest.approx(4 + 5 + 4 + 1.0 + 0.5)
    from dataclasses import replace

    dpo = cal_mod.predict(m, replace(counts, rows=40), replace(s, method="dpo"))  # 10 steps: 6 at 2 s/step
    assert dpo.optimizer_steps == 10 and dpo.steps_s == pytest.approx(6 + 6 * 2.0)
    # SFT with positions fed: 6 steps, 4 measured (400 positions each, 1200 an epoch): 800 left at 5 ms
    mp = replace(m, step_positions=[400, 400, 400, 400])
    sft = cal_mod.predict(mp, replace(counts, positions_per_epoch=1200.0), replace(s, epochs=2))
    assert sft.optimizer_steps == 6 and sft.steps_s == pytest.approx(6 + 800 * 6.0 / 1200)
    # without them: the non-padding tokens (600 left at 6 s / 300 tokens)
    tok = cal_mod.predict(m, counts, replace(s, epochs=2))
    assert tok.steps_s == pytest.approx(6 + (600 - 400) * 6.0 / 300)


def test_a_busy_machine_is_noticed():
    from dataclasses import replace

    base = cal_mod.Measurements(imports_s=1, imports_measured=True, model_load_s=1, trainer_build_s=1,
                                trainer_start_s=1, step_seconds=[4.0, 3.0, 4.5, 3.6], step_tokens=[90, 80, 95, 85],
                                warmup_steps=1, checkpoint_save_s=0.1, eval_s=None, final_save_s=0.1, finish_s=0.0,
                                step_positions=[100, 400, 600, 480])
    assert cal_mod.steady_spread(base) == pytest.approx(1.0)  # same cost per position: quiet
    busy = replace(base, step_seconds=[4.0, 3.0, 18.0, 3.6])
    assert cal_mod.steady_spread(busy) == pytest.approx(4.0) and 4.0 > cal_mod.NOISY_SPREAD
    fast = cal_mod.at_fastest_rate(busy)
    assert fast.step_seconds == pytest.approx([4.0, 3.0, 4.5, 3.6])


def test_expected_positions_of_padded_batches():
    assert cal_mod.expected_positions([5] * 12, 4) == 60  # nothing to pad
    assert cal_mod.expected_positions([1] * 7 + [10], 8) == 80  # one batch, padded to its longest
    assert cal_mod.expected_positions([3] * 10, 4, drop_last=True) == 24  # the short batch dropped
    lens = [3, 9, 4, 12, 7, 5, 6, 8, 10, 2]
    e = cal_mod.expected_positions(lens, 4)
    assert sum(lens) < e < len(lens) * max(lens)


# ----------------------------------------------------------------------------- prices

def test_local_price_from_the_spec_and_the_catalogue(tmp_path, tiny):
    from ftclient.cost import local_gpu_price
    from ftclient.prices import load_catalogue

    assert local_gpu_price(spec=make_spec(tmp_path, tiny)) is None
    given = local_gpu_price(usd_per_hour=0.7, spec=make_spec(tmp_path, tiny, local={"gpu_price_per_hour": 9.0}))
    assert given["usd_per_hour"] == 0.7 and given["billing"] == "exact"
    cat = load_catalogue()
    offer = cat.gpu_refs()[0]
    p = local_gpu_price(spec=make_spec(tmp_path, tiny, local={"gpu": offer}))
    assert p["usd_per_hour"] == cat.gpu(offer).usd_per_hour and p["offer"] == offer
    name = "rtx4090"
    cheapest = min(cat.gpu(r).usd_per_hour for r in cat.gpu_refs() if cat.gpu(r).spec and cat.gpu(r).spec.name == name)
    assert local_gpu_price(spec=make_spec(tmp_path, tiny, local={"gpu": name}))["usd_per_hour"] == cheapest


# ----------------------------------------------------------------------------- CLI

def test_cli_calibrate_json_then_cached_offline_estimate(ftc, tmp_path, tiny):
    data = write_jsonl(tmp_path / "train.jsonl", sft_records(20))
    common = [data, "--model", f"local:{tiny}", "--batch-size", "4", "--max-seq-len", "64"]
    r = ftc("cost", "estimate", *common, "--epochs", "1", "--calibrate", "--steps", "2",
            "--gpu-price-per-hour", "3", "--json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["device"] == "cpu" and d["precision"] == "fp32" and d["calibration_steps"] == 2
    p = d["prediction"]
    parts = ("setup_s", "warmup_s", "steps_s", "checkpoints_s", "evaluations_s", "final_save_s", "finish_s")
    assert p["optimizer_steps"] == 5 and sum(p[k] for k in parts) == pytest.approx(p["total_s"])
    assert d["cost_usd"] == pytest.approx(round(p["total_s"] / 3600 * 3, 4))
    assert d["epochs"] == 1 and d["epochs_basis"] == "given"
    assert "calibrating" not in r.err  # quiet with --json

    # without --calibrate: the cached speed, re-predicted for 3 epochs
    r2 = ftc("cost", "estimate", *common, "--epochs", "3", "--gpu-price-per-hour", "3", "--json")
    assert r2.code == 0, r2.err
    e = r2.json()
    assert e["optimizer_steps"] == 15 and e["duration_s"] > p["total_s"]
    assert e["cost_usd"] == pytest.approx(round(e["duration_s"] / 3600 * 3, 4))
    assert e["token_count_exact"] is True and "tokenizer" in e["token_count_basis"]
    # other settings: not calibrated, so no time and no cost at a price
    r3 = ftc("cost", "estimate", *common[:-4], "--batch-size", "2", "--epochs", "3", "--gpu-price-per-hour", "3",
             "--json")
    assert r3.code == 0, r3.err
    assert r3.json()["duration_s"] is None and r3.json()["cost_usd"] is None


def test_cli_rejects_calibrate_for_hosted_models(ftc, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", sft_records(4))
    r = ftc("cost", "estimate", data, "--model", "openai:gpt-4.1-mini", "--calibrate")
    assert r.code == 2 and "local" in r.err


def test_cost_estimate_without_calibrate_does_not_import_torch(tmp_path, tiny, home):
    data = write_jsonl(tmp_path / "train.jsonl", sft_records(12))
    code = (
        "import json, sys\n"
        "from click.testing import CliRunner\n"
        "from ftclient.cli.main import cli\n"
        f"r = CliRunner().invoke(cli, ['cost', 'estimate', {str(data)!r}, '--model', {'local:' + str(tiny)!r}, "
        "'--max-seq-len', '64', '--json'])\n"
        "print(json.dumps({'code': r.exit_code, 'out': r.stdout, 'err': r.stderr,\n"
        "                  'heavy': sorted(m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules)}))\n"
    )
    env = {**os.environ, "FTC_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["code"] == 0, res["err"]
    assert res["heavy"] == []
    est = json.loads(res["out"])
    spec = cal_mod.spec_for(data, f"local:{tiny}", epochs=est["epochs"], max_seq_len=64)
    assert est["token_count_exact"] is True
    assert est["tokens_per_epoch"] == cal_mod.offline_counts(spec).tokens_per_epoch > 0
