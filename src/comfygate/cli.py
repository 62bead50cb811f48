"""The command line. Each command only parses, builds settings and calls one function."""

from __future__ import annotations

import asyncio
import contextlib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from comfygate.config import Settings, load_settings
from comfygate.errors import ContractError, DatabaseDamaged, MissingExtra


class _Commands(TyperGroup):
    """Every command, the nested ones too: a damaged database, or a setting whose extra
    is not installed, ends it with one line naming what to do, where a traceback of
    hundreds said neither."""

    # Any: the Context the supertype names is of typer's private copy of click.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (DatabaseDamaged, MissingExtra) as exc:
            typer.echo(f"comfygate: {exc}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Commands, help="comfygate: run ComfyUI workflows as jobs.", no_args_is_help=True
)
workflows_app = typer.Typer(help="Inspect workflow folders.", no_args_is_help=True)
app.add_typer(workflows_app, name="workflows")
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
keys_app = typer.Typer(
    help="API keys: programs, remote workers (scope worker) and scripts.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
budgets_app = typer.Typer(
    help="What each principal's jobs may cost per day or month.", no_args_is_help=True
)
app.add_typer(budgets_app, name="budgets")

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
    allow_anonymous: Annotated[
        bool | None,
        typer.Option(
            "--allow-anonymous",
            envvar="COMFYGATE_ALLOW_ANONYMOUS",
            help="Demo only: requests without credentials share one local principal "
            "instead of getting 401 [default: off].",
        ),
    ] = None,
    public_site: Annotated[
        bool | None,
        typer.Option(
            "--public-site",
            envvar="COMFYGATE_PUBLIC_SITE",
            help="Open the web pages to the public: each browser gets a visitor "
            "identity (cookie) [default: off].",
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
        allow_anonymous=allow_anonymous,
        public_site=public_site,
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
    """Start a ComfyUI simulator and the gateway on the embedded defaults, open to
    anyone (anonymous use and the public site are on: a demo, not a deployment)."""
    from comfygate.serve import start_simulator, stop_process

    settings = load_settings(
        None,
        port=port,
        data_dir=data_dir,
        workflows_dir=workflows,
        allow_anonymous=True,
        public_site=True,
    )
    sim, sim_url = start_simulator(settings.data_dir / "sim", step_ms=step_ms)
    # A demo's pages are public: its visitors are rate and concurrency limited.
    settings = settings.model_copy(
        update={"comfy": [sim_url], "limits": settings.limits.with_demo_defaults()}
    )
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
    history_lag_ms: Annotated[
        float,
        typer.Option(
            min=0,
            envvar="COMFYGATE_SIM_HISTORY_LAG_MS",
            help="Time between sending execution_success and writing /history, as "
            "ComfyUI's prompt worker may take: a client asking at once finds {}.",
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
            history_lag_ms=history_lag_ms,
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
    key: Annotated[
        str | None,
        typer.Option(
            envvar="COMFYGATE_API_KEY",
            help="An API key with jobs:write and jobs:read (not needed on the demo).",
        ),
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
            key=key,
        )
    except SubmitError as exc:
        typer.echo(f"error: {exc}", err=True)
        code = 2
    raise typer.Exit(code)


@app.command()
def worker(
    gateway: Annotated[str, typer.Option(envvar="COMFYGATE_GATEWAY", help="Gateway URL.")],
    token: Annotated[
        str,
        typer.Option(
            envvar="COMFYGATE_WORKER_TOKEN",
            help="An API key with the worker scope (keys create --scopes worker).",
        ),
    ],
    comfy: Annotated[
        str, typer.Option(envvar="COMFYGATE_COMFY", help="This host's ComfyUI.")
    ] = "http://127.0.0.1:8188",
    pool: Annotated[
        str, typer.Option(envvar="COMFYGATE_POOL", help="Pool(s) to serve, comma-separated.")
    ] = "default",
) -> None:
    """Run one agent for a ComfyUI on this host; needs only outbound HTTP(S) to the gateway."""
    import logging

    from comfygate.serve import run
    from comfygate.worker.remote import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run(run_worker(gateway=gateway, token=token, comfy=comfy, pool=pool))


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="Who holds it, e.g. a site or a GPU host.")],
    scopes: Annotated[
        str,
        typer.Option(
            "--scopes",
            help="Comma-separated: jobs:write, jobs:read, admin, worker, raw (reserved).",
        ),
    ],
    pool: Annotated[
        str | None, typer.Option(help="A worker key leases from this pool only (default: any).")
    ] = None,
    webhook: Annotated[
        str | None,
        typer.Option(
            "--webhook",
            help="Default webhook URL: this key's submits without a `webhook` send their "
            "terminal events here (checked like a submit's webhook URL).",
        ),
    ] = None,
    data_dir: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create an API key; it is printed alone on the last line, this once."""
    from comfygate.key_admin import BadWebhookUrl, create_key, describe
    from comfygate.keys import UnknownScope, parse_scopes

    try:
        granted = parse_scopes(scopes)
    except UnknownScope as exc:
        raise typer.BadParameter(str(exc), param_hint="--scopes") from None
    settings = load_settings(config, data_dir=data_dir)
    try:
        key, secret = asyncio.run(create_key(settings, name, granted, pool, webhook))
    except BadWebhookUrl as exc:
        raise typer.BadParameter(str(exc), param_hint="--webhook") from None
    typer.echo(describe(key))
    typer.echo("the key (shown once, only its hash is stored):")
    typer.echo(secret)


@keys_app.command("list")
def keys_list(data_dir: DataOpt = None, config: ConfigOpt = None) -> None:
    """List API keys (never their secrets)."""
    from comfygate.key_admin import describe, list_keys

    for key in asyncio.run(list_keys(load_settings(config, data_dir=data_dir))):
        typer.echo(describe(key))


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The id `list` shows.")],
    data_dir: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke an API key: its next request is refused."""
    from comfygate.key_admin import revoke_key

    if not asyncio.run(revoke_key(load_settings(config, data_dir=data_dir), key_id)):
        typer.echo(f"error: no active key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


class BudgetPeriod(StrEnum):
    day = "day"
    month = "month"


@budgets_app.command("set")
def budgets_set(
    principal_id: Annotated[str, typer.Argument(help="The principal's id (a key's, a user's...).")],
    amount: Annotated[float, typer.Option(min=0, help="Cost its jobs may add up to.")],
    period: Annotated[
        BudgetPeriod, typer.Option(help="Calendar day or month, UTC.")
    ] = BudgetPeriod.day,
    data_dir: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Set (or replace) a principal's budget; a job that would pass it gets 402."""
    from comfygate.budget_admin import describe, set_budget
    from comfygate.jobs.quota import Budget

    budget = Budget(amount=amount, period="day" if period is BudgetPeriod.day else "month")
    asyncio.run(set_budget(load_settings(config, data_dir=data_dir), principal_id, budget))
    typer.echo(describe(principal_id, budget))


@budgets_app.command("list")
def budgets_list(data_dir: DataOpt = None, config: ConfigOpt = None) -> None:
    """List the budgets set per principal (the visitors' default is a setting)."""
    from comfygate.budget_admin import describe, list_budgets

    for principal_id, budget in asyncio.run(list_budgets(load_settings(config, data_dir=data_dir))):
        typer.echo(describe(principal_id, budget))


@budgets_app.command("remove")
def budgets_remove(
    principal_id: Annotated[str, typer.Argument(help="The principal's id.")],
    data_dir: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Remove a principal's budget: its jobs are no longer limited by cost."""
    from comfygate.budget_admin import remove_budget

    if not asyncio.run(remove_budget(load_settings(config, data_dir=data_dir), principal_id)):
        typer.echo(f"error: no budget for {principal_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed the budget of {principal_id}")


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
    except ContractError as exc:
        # No workflows folder where it looked (started from another directory), or a
        # contract that does not load: say which, and how to name the folder.
        typer.echo(
            f"comfygate: {exc.message}; name the folder with --workflows DIR "
            "(comfygate workflows check DIR lists every problem)",
            err=True,
        )
        raise typer.Exit(2) from None


def main() -> None:  # pragma: no cover
    app()
