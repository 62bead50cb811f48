"""The command line. Each command only parses, builds settings and calls one function."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated

import typer

from comfygate.config import Settings, load_settings

app = typer.Typer(help="comfygate: run ComfyUI workflows as jobs.", no_args_is_help=True)
workflows_app = typer.Typer(help="Inspect workflow folders.", no_args_is_help=True)
app.add_typer(workflows_app, name="workflows")
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
tokens_app = typer.Typer(help="Credentials of remote worker agents.", no_args_is_help=True)
app.add_typer(tokens_app, name="worker-token")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", envvar="COMFYGATE_CONFIG", help="TOML settings file (default ./comfygate.toml)."
    ),
]
HostOpt = Annotated[
    str | None,
    typer.Option(envvar="COMFYGATE_HOST", help="Address to listen on [default: 127.0.0.1]."),
]
PortOpt = Annotated[
    int | None, typer.Option(envvar="COMFYGATE_PORT", help="Port to listen on [default: 8000].")
]
DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="COMFYGATE_DATA_DIR",
        help="SQLite database and stored files [default: ./data].",
    ),
]
WorkflowsOpt = Annotated[
    Path | None,
    typer.Option(
        "--workflows",
        envvar="COMFYGATE_WORKFLOWS_DIR",
        help="Folder of workflow folders [default: ./workflows].",
    ),
]


@app.command()
def serve(
    host: HostOpt = None,
    port: PortOpt = None,
    data_dir: DataOpt = None,
    workflows: WorkflowsOpt = None,
    config: ConfigOpt = None,
    comfy: Annotated[
        list[str] | None,
        typer.Option(
            envvar="COMFYGATE_COMFY",
            help="A ComfyUI backend as [POOL=]URL; repeat for more (pool 'default' if unnamed).",
        ),
    ] = None,
) -> None:
    """Run the gateway."""

    settings = load_settings(
        config,
        host=host,
        port=port,
        data_dir=data_dir,
        workflows_dir=workflows,
        comfy=comfy or None,
    )
    if not settings.backends:
        typer.echo("warning: no --comfy backend: jobs will wait in the queue", err=True)
    url = f"http://{settings.host}:{settings.port}"
    settings.admin_key()  # made now, so the file named below exists
    banner = (
        f"comfygate on {url}  (API docs: {url}/docs)\n"
        f"  ops dashboard {url}/admin, admin token in {settings.admin_token_origin}"
    )
    serve_or_explain(settings, banner)


@app.command()
def demo(
    port: PortOpt = None,
    data_dir: DataOpt = None,
    workflows: WorkflowsOpt = None,
    step_ms: Annotated[float, typer.Option(help="Simulated sampler step time.")] = 50.0,
) -> None:
    """Start a ComfyUI simulator and the gateway on the embedded defaults."""
    from comfygate.serve import start_simulator, stop_process

    settings = load_settings(None, port=port, data_dir=data_dir, workflows_dir=workflows)
    sim, sim_url = start_simulator(settings.data_dir / "sim", step_ms=step_ms)
    settings = settings.model_copy(update={"comfy": [sim_url]})
    url = f"http://{settings.host}:{settings.port}"
    banner = "\n".join(
        [
            f"comfygate demo: gateway {url}  (simulated ComfyUI at {sim_url})",
            f"  web site   {url}/  (a page per workflow: fill the form, watch it run)",
            f"  API docs   {url}/docs",
            f"  workflows  {url}/v1/workflows",
            f"  try        curl -s -X POST {url}/v1/workflows/image-ops/jobs "
            "-H 'content-type: application/json' -d '{\"params\": {}}'",
            f"  or         comfygate submit txt2img -p prompt='a lighthouse at dusk' "
            f"--gateway {url} --wait",
            f"  dashboard  {url}/admin  with the admin token {settings.admin_key()}",
            f"             (from {settings.admin_token_origin})",
        ]
    )
    try:
        serve_or_explain(settings, banner)
    except KeyboardInterrupt:
        pass
    finally:
        stop_process(sim)


@app.command()
def sim(
    port: Annotated[
        int, typer.Option(envvar="COMFYGATE_SIM_PORT", help="Port to listen on.")
    ] = 8188,
    host: Annotated[
        str, typer.Option(envvar="COMFYGATE_SIM_HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir", envvar="COMFYGATE_SIM_DATA_DIR", help="input/, output/ and temp/ folders."
        ),
    ] = Path("data/sim"),
    step_ms: Annotated[
        float, typer.Option(envvar="COMFYGATE_SIM_STEP_MS", help="Time per sampler step.")
    ] = 50.0,
    fail_rate: Annotated[
        float,
        typer.Option(envvar="COMFYGATE_SIM_FAIL_RATE", help="Share of prompts that fail, 0..1."),
    ] = 0.0,
    crash_after_steps: Annotated[
        int | None,
        typer.Option(
            envvar="COMFYGATE_SIM_CRASH_AFTER_STEPS",
            help="Exit hard after this many sampler steps.",
        ),
    ] = None,
    stall_rate: Annotated[
        float,
        typer.Option(
            envvar="COMFYGATE_SIM_STALL_RATE",
            help="Share of prompts that hang partway (silent, still running) until "
            "POST /interrupt, then end as interrupted, 0..1.",
        ),
    ] = 0.0,
    ws_drop_rate: Annotated[
        float,
        typer.Option(
            envvar="COMFYGATE_SIM_WS_DROP_RATE",
            help="Chance, per WebSocket message of a running prompt, that its client's "
            "socket is cut (no close frame) instead; the prompt runs on, 0..1.",
        ),
    ] = 0.0,
    oom_rate: Annotated[
        float,
        typer.Option(
            envvar="COMFYGATE_SIM_OOM_RATE",
            help="Share of prompts whose KSampler (else another node) fails with a CUDA "
            "out-of-memory error (torch.OutOfMemoryError), 0..1.",
        ),
    ] = 0.0,
    seed: Annotated[
        int | None,
        typer.Option(
            envvar="COMFYGATE_SIM_SEED", help="Seed for the rates above: a seed replays a run."
        ),
    ] = None,
    backends: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="COMFYGATE_SIM_BACKENDS",
            help="Independent simulated backends, on consecutive ports from --port (0: any "
            "free ports), each with its own queue, history and files (DATA_DIR/backend-I "
            "when more than one). A crash ends them all: they share this process.",
        ),
    ] = 1,
) -> None:
    """Run the ComfyUI simulator (or several, from one process)."""
    from comfygate.sim import SimConfig, run_sim

    try:
        cfg = SimConfig(
            data_dir=data_dir,
            step_ms=step_ms,
            fail_rate=fail_rate,
            crash_after_steps=crash_after_steps,
            seed=seed,
            stall_rate=stall_rate,
            ws_drop_rate=ws_drop_rate,
            oom_rate=oom_rate,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_sim(cfg, host, port, backends))


@app.command()
def submit(
    workflow: Annotated[str, typer.Argument(help="Workflow name, e.g. txt2img.")],
    param: Annotated[
        list[str] | None, typer.Option("-p", "--param", help="NAME=VALUE (JSON or text); repeat.")
    ] = None,
    file: Annotated[
        list[str] | None,
        typer.Option("-f", "--file", help="NAME=@PATH for an image parameter; repeat."),
    ] = None,
    gateway: Annotated[
        str, typer.Option(envvar="COMFYGATE_GATEWAY", help="Gateway URL.")
    ] = "http://127.0.0.1:8000",
    out: Annotated[Path, typer.Option(help="Where --wait saves the outputs.")] = Path("outputs"),
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow the job and save its outputs.")
    ] = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Makes a retried submit safe.")
    ] = None,
) -> None:
    """Submit a job; with --wait show its progress and save its outputs."""
    from comfygate.submit import SubmitError, run_submit

    try:
        code = run_submit(
            gateway,
            workflow,
            param or [],
            file or [],
            wait=wait,
            out=out,
            idempotency_key=idempotency_key,
        )
    except SubmitError as exc:
        typer.echo(f"error: {exc}", err=True)
        code = 2
    raise typer.Exit(code)


@app.command()
def worker(
    gateway: Annotated[str, typer.Option(envvar="COMFYGATE_GATEWAY", help="Gateway URL.")],
    token: Annotated[
        str, typer.Option(envvar="COMFYGATE_WORKER_TOKEN", help="A worker token (cgw_…).")
    ],
    comfy: Annotated[
        str, typer.Option(envvar="COMFYGATE_COMFY", help="This host's ComfyUI.")
    ] = "http://127.0.0.1:8188",
    pool: Annotated[str, typer.Option(envvar="COMFYGATE_POOL", help="Pool to serve.")] = "default",
) -> None:
    """Run one agent for a ComfyUI on this host; needs only outbound HTTP(S) to the gateway."""
    import logging

    from comfygate.serve import run
    from comfygate.worker.remote import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run(run_worker(gateway=gateway, token=token, comfy=comfy, pool=pool))


@tokens_app.command("create")
def worker_token_create(
    name: Annotated[str, typer.Argument(help="Who holds it, e.g. the GPU host's name.")],
    pool: Annotated[str | None, typer.Option(help="Only this pool (default: any).")] = None,
    data_dir: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a worker token; its secret is shown this once."""
    from comfygate.worker.token_admin import create_token, describe

    settings = load_settings(config, data_dir=data_dir)
    token, secret = asyncio.run(create_token(settings, name, pool))
    typer.echo(describe(token))
    typer.echo(f"secret (shown once): {secret}")


@tokens_app.command("list")
def worker_token_list(data_dir: DataOpt = None, config: ConfigOpt = None) -> None:
    """List worker tokens (never their secrets)."""
    from comfygate.worker.token_admin import describe, list_tokens

    for token in asyncio.run(list_tokens(load_settings(config, data_dir=data_dir))):
        typer.echo(describe(token))


@tokens_app.command("revoke")
def worker_token_revoke(
    token_id: Annotated[str, typer.Argument(help="The id `list` shows.")],
    data_dir: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke a worker token: its agent's next call is refused."""
    from comfygate.worker.token_admin import revoke_token

    if not asyncio.run(revoke_token(load_settings(config, data_dir=data_dir), token_id)):
        typer.echo(f"error: no active worker token {token_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {token_id}")


@workflows_app.command("list")
def workflows_list(workflows: WorkflowsOpt = None, config: ConfigOpt = None) -> None:
    """List the workflows with their versions."""
    from comfygate.contracts import load_workflows

    settings = load_settings(config, workflows_dir=workflows)
    for wf in load_workflows(settings.workflows_dir).values():
        typer.echo(f"{wf.name:<16} {wf.version[:12]}  pool={wf.pool:<10} {wf.title}")


@workflows_app.command("check")
def workflows_check(
    workflows: WorkflowsOpt = None,
    config: ConfigOpt = None,
    object_info: Annotated[
        Path | None, typer.Option(help="A ComfyUI /object_info JSON to check nodes against.")
    ] = None,
) -> None:
    """Load every workflow as the gateway would and report every problem."""
    import json

    from comfygate.contracts import load_workflows, validate_against_object_info
    from comfygate.errors import ContractError

    settings = load_settings(config, workflows_dir=workflows)
    try:
        loaded = load_workflows(settings.workflows_dir)
    except ContractError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    problems: list[str] = []
    if object_info is not None:
        info = json.loads(object_info.read_text())
        for wf in loaded.values():
            problems += [f"{wf.name}: {p}" for p in validate_against_object_info(wf, info)]
    for p in problems:
        typer.echo(p, err=True)
    typer.echo(f"{len(loaded)} workflows, {len(problems)} problems")
    raise typer.Exit(1 if problems else 0)


@db_app.command("upgrade")
def db_upgrade(data_dir: DataOpt = None, config: ConfigOpt = None) -> None:
    """Apply the database migrations (for deployments that start with
    migrate_on_start = false)."""
    from comfygate.store.database import upgrade_schema

    settings = load_settings(config, data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    current, head = asyncio.run(upgrade_schema(settings.db_url))
    typer.echo(f"schema at {head} (was {current or 'empty'})")


@db_app.command("current")
def db_current(data_dir: DataOpt = None, config: ConfigOpt = None) -> None:
    """Print the database's schema revision and this comfygate's newest."""
    from comfygate.store.database import schema_revision

    settings = load_settings(config, data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    current, head = asyncio.run(schema_revision(settings.db_url))
    typer.echo(f"database {current or 'empty'}, comfygate {head}")
    raise typer.Exit(0 if current == head else 1)


def serve_or_explain(settings: Settings, banner: str) -> None:
    """Run the gateway; a schema it cannot run on ends it with the reason, not a trace."""
    from comfygate.serve import run, run_gateway
    from comfygate.store.migrate import SchemaMismatch

    try:
        run(run_gateway(settings, on_ready=banner))
    except SchemaMismatch as exc:
        typer.echo(f"comfygate: {exc}", err=True)
        raise typer.Exit(2) from None


def main() -> None:  # pragma: no cover
    app()
