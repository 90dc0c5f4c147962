"""`rl stats`: Docker's table of container resource usage, measured from /proc (rl has no
cgroups to read: rootless/engine/stats.py says how each figure is taken)."""

from __future__ import annotations

import click

from rootless.cli import options

STATS_HEADER = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME",
                "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
               "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")


def _binary(n: float) -> str:
    """go-units BytesSize: powers of 1024, "%.4g" and the unit (Docker's MEM USAGE)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.4g}{units[i]}"


def _docs(cs, no_trunc: bool) -> list[dict]:
    from rootless.engine import stats
    from rootless.format.docker_shapes import human_size

    running = {c.id: c.pid for c in cs if c.state == "running" and c.pid}
    measured = stats.measure(running) if running else {}
    limit = stats.mem_total()
    docs = []
    for c in cs:
        s, cpu = measured.get(c.id, (stats.Sample(), 0.0))
        pct = 100.0 * s.mem / limit if limit and c.id in measured else 0.0
        docs.append({
            "BlockIO": f"{human_size(s.blk_read, 4)} / {human_size(s.blk_write, 4)}",
            "CPUPerc": f"{cpu:.2f}%", "Container": c.id if no_trunc else c.short_id,
            "ID": c.id if no_trunc else c.short_id,
            "MemPerc": f"{pct:.2f}%",
            "MemUsage": f"{_binary(s.mem)} / {_binary(limit if c.id in measured else 0)}",
            "Name": c.name,
            "NetIO": f"{human_size(s.net_rx, 4)} / {human_size(s.net_tx, 4)}",
            "PIDs": str(s.pids)})
    return docs


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show stopped containers too.")
@click.option("--no-stream", is_flag=True, help="Print one reading and exit.")
@click.option("--no-trunc", is_flag=True, help="Do not shorten ids.")
@click.option("--format", "fmt", metavar="FORMAT",
              help="table (default), json (one object a line) or a Go template over .ID "
                   ".Name .CPUPerc .MemUsage .MemPerc .NetIO .BlockIO .PIDs.")
@click.argument("containers", nargs=-1)
def stats(all_: bool, no_stream: bool, no_trunc: bool, fmt: str | None,
          containers: tuple[str, ...]) -> None:
    """Show containers' CPU, memory, PIDs and I/O. Measured from /proc over each
    container's processes, as rl has no cgroups: memory is the sum of their resident
    sizes against the host's memory, CPU % their CPU time over one second."""
    import sys

    from rootless.engine import containers as engine

    if fmt not in (None, "table", "json"):
        options.compile_format(fmt)
    template = STATS_TABLE if fmt in (None, "table") else fmt
    while True:
        if containers:
            cs = [engine.lookup(ref) for ref in containers]
        else:
            cs = engine.list_containers(all_)
        docs = _docs(cs, no_trunc)
        if not no_stream and sys.stdout.isatty():
            sys.stdout.write("\033[2J\033[H")  # Docker redraws the table in place
        options.echo_formatted(template, docs, STATS_HEADER)
        if no_stream:
            return
