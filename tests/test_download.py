"""``ftc jobs download``: a job's model or checkpoint, where the provider allows it."""

from __future__ import annotations

import json

import pytest

from emulator import ProviderEmulator, status

together = pytest.importorskip("together")

from test_provider_together import _rows, backend_for, make_spec, new_job, poll_final  # noqa: E402

from ftclient import jobs as J  # noqa: E402
from ftclient.errors import FtcError, UsageError  # noqa: E402
from ftclient.store import Store  # noqa: E402

DOWNLOAD = r"/v1/finetune/download"


@pytest.fixture
def done_job(tmp_path):
    """A Together job run to completion on the emulator, recorded in a store."""
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(12)))
    with ProviderEmulator("together") as emu, Store(tmp_path / "ftc.db") as st:
        be = backend_for(emu)
        spec = make_spec(tmp_path)
        job = new_job(st, spec)
        pid = be.submit(spec, job=job, store=st).provider_job_id
        final = poll_final(be, pid)
        st.update_state(job.id, "succeeded", fine_tuned_model=final.fine_tuned_model)
        yield emu, be, st, st.get_job(job.id)
        emu.check_responses()


def test_download_the_adapter_atomically_and_record_it(done_job, tmp_path):
    emu, be, st, job = done_job
    dest = tmp_path / "out" / "model.tar.zst"
    path = J.download(job.id, dest, store=st, backend=be)
    data = path.read_bytes()
    assert path == dest and data.startswith(f"ftc-emulator archive {job.provider_job_id} adapter".encode())
    assert len(data) > 256 * 1024  # streamed whole
    (req,) = emu.requests_to(DOWNLOAD, "GET")
    assert req.query["ft_id"] == [job.provider_job_id] and req.query["checkpoint"] == ["adapter"]
    ops = [o for o in st.operations(job.id) if o.kind == "download"]
    assert len(ops) == 1 and ops[0].state == "done" and not ops[0].is_open


def test_download_a_checkpoint_by_step(done_job, tmp_path):
    emu, be, st, job = done_job
    steps = [c.step for c in be.checkpoints(job.provider_job_id) if c.step]
    path = J.download(job.id, tmp_path / "cp.tar.zst", step=steps[0], store=st, backend=be)
    assert f" {steps[0]}\n".encode() in path.read_bytes()[:200]
    with pytest.raises(FtcError):
        J.download(job.id, tmp_path / "nope.tar.zst", step=99999, store=st, backend=be)
    assert not (tmp_path / "nope.tar.zst").exists()


def test_a_failed_download_leaves_no_file_and_is_settled(done_job, tmp_path):
    emu, be, st, job = done_job
    emu.fail(DOWNLOAD, "GET", [status(500)] * 10)
    dest = tmp_path / "model.tar.zst"
    with pytest.raises(FtcError):
        J.download(job.id, dest, store=st, backend=be)
    assert not dest.exists() and list(tmp_path.glob(".model.tar.zst.*")) == []
    assert all(not o.is_open for o in st.operations(job.id))


def test_resume_settles_a_download_a_killed_process_left_open(done_job):
    emu, be, st, job = done_job
    op = st.begin_operation(job.id, "download", {"checkpoint": "adapter"})
    st.mark_sent(op.id)
    st.release(job.id)
    outcomes = J.resume(job.id, store=st, backends={"together": be}, watch_jobs=False)
    assert any(o.action == "settled" for o in outcomes)
    assert all(not o.is_open for o in st.operations(job.id))


def test_openai_refuses_downloads_without_a_request(tmp_path):
    import openai

    from ftclient.providers.openai import OpenAIBackend
    from ftclient.retry import sdk_client_kwargs

    with ProviderEmulator("openai") as emu:
        be = OpenAIBackend(client=openai.OpenAI(base_url=emu.base_url, api_key=emu.api_key,
                                                **sdk_client_kwargs("openai")))
        with pytest.raises(UsageError, match="OpenAI keeps fine-tuned weights"):
            be.download("ftjob-1", tmp_path / "x")
        assert emu.requests == []
