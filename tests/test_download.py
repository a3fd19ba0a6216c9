"""``ftc jobs download``: a job's model or checkpoint, where the provider allows it."""

from __future__ import annotations

import json
from pathlib import Path

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


# --------------------------------------------------------------------------- the archive, unpacked and exported


def _tar(members: dict[str, bytes], *, compress: str = "zst") -> bytes:
    """A tar archive of ``members`` (name -> bytes), zstandard- or gzip-compressed or plain."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    if compress == "zst":
        import zstandard

        return zstandard.ZstdCompressor().compress(raw)
    if compress == "gz":
        import gzip

        return gzip.compress(raw)
    return raw


def _folder_members(folder, prefix: str) -> dict[str, bytes]:
    return {f"{prefix}/{p.relative_to(folder)}": p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_downloaded_together_model_exports_like_a_local_one(done_job, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("zstandard")
    from tiny_model import build_tiny_model

    from ftclient import export_model

    emu, be, st, job = done_job
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    # what Together's merged checkpoint is: a transformers checkpoint, in a folder of the archive
    tiny = build_tiny_model(tmp_path / "tiny")
    emu.model_archive = _tar(_folder_members(tiny, "model"))
    with pytest.raises(UsageError, match="keeps the model's weights") as ei:  # not downloaded yet
        export_model(job.id, "gguf", tmp_path / "none", store=st)
    assert f"ftc jobs download {job.id}" in ei.value.hint
    path = J.download(job.id, checkpoint="merged", store=st, backend=be)
    for k, v in emu.env.items():  # the job's own backend, for the card's final loss, is the emulator's
        monkeypatch.setenv(k, v)
    res = export_model(job.id, "gguf", tmp_path / "gguf", store=st)
    assert res["format"] == "gguf" and res["architecture"] == "llama" and Path(res["gguf"]).is_file()
    card = (tmp_path / "gguf" / "README.md").read_text()
    assert job.model in card and job.id in card  # the card is the Together job's
    unpacked = path.with_name(path.name.split(".tar")[0] + "-unpacked")
    assert (unpacked / "model" / "config.json").is_file()
    # a second export, and `ftc serve JOB`, read the folder unpacked the first time
    monkeypatch.setattr("ftclient.weights.unpack_model_archive", lambda *a, **k: pytest.fail("unpacked twice"))
    assert export_model(job.id, "merged", tmp_path / "merged", store=st)["format"] == "merged"
    # `ftc serve JOB` asks the same question (tests/test_serve.py serves a local folder for real)
    from ftclient.backends import here_backend
    from ftclient.modelref import parse_model_ref
    from ftclient.weights import weights_here

    assert weights_here(parse_model_ref(job.id, store=st), st, "serve_model") == (here_backend(), str(unpacked / "model"))
