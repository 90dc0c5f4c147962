"""`rl network create/ls/inspect/rm/prune/connect/disconnect` and `rl port`: parse, call
rootless.engine.networks, print as Docker does."""

from __future__ import annotations

import click

from rootless.cli import options
from rootless.engine.filters import NETWORK_KEYS as _NETWORK_KEYS


@click.group()
def network() -> None:
    """Manage networks (containers on one network reach each other by name)."""


@network.command("create")
@click.option("--subnet", help="Subnet in CIDR form, e.g. 10.90.0.0/24 (default: a free 10.89.N.0/24).")
@click.option("--gateway", help="Gateway address in the subnet (default: its first address).")
@click.option("--label", "labels", multiple=True, help="Set a label KEY=VALUE.")
@click.option("--internal", is_flag=True, help="No access to the outside.")
@click.option("-d", "--driver", default="bridge", show_default=True, help="Only bridge.")
@click.argument("name")
def create(subnet, gateway, labels, internal, driver, name) -> None:
    """Create a network."""
    from rootless.engine import networks

    net = networks.create(name, subnet=subnet, gateway=gateway, labels=options.labels(labels),
                          internal=internal, driver=driver)
    click.echo(net.id)




@network.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
@options.format_option("networks (.ID .Name .Driver .Labels .Label \"k\" ...)")
@options.filter_option(_NETWORK_KEYS)
def ls(quiet, no_trunc, fmt, filters) -> None:
    """List networks."""
    from rootless.engine import filters as flt_mod
    from rootless.engine import networks

    flt = options.parse_filters(filters, _NETWORK_KEYS)
    if fmt not in (None, "table") and not quiet:
        options.compile_format(fmt)
    nets = flt_mod.networks(networks.list_networks(), flt)
    if fmt not in (None, "table") and not quiet:
        from rootless.format import docker_shapes as shapes

        options.echo_formatted(fmt, (shapes.network_doc(n, no_trunc=no_trunc) for n in nets),
                               shapes.NETWORK_HEADER)
        return
    width = 64 if no_trunc else 12
    if quiet:
        for n in nets:
            click.echo(n.id[:width])
        return
    rows = [("NETWORK ID", "NAME", "DRIVER", "SCOPE")]  # Docker's columns
    rows += [(n.id[:width], n.name, n.driver, "local") for n in nets]
    from rootless.cli.tables import rows as table_rows

    for line in table_rows(rows, sep="   "):
        click.echo(line)


def _network_inspect():
    from rootless.cli.inspect import network_inspect

    return network_inspect


network.add_command(_network_inspect(), "inspect")
network.add_command(ls, "list")


@network.command("rm")
@click.option("-f", "--force", is_flag=True, help="Do not fail when a network does not exist.")
@click.argument("names", nargs=-1, required=True)
def rm(force, names) -> None:
    """Remove networks no container uses."""
    from rootless.engine import networks
    from rootless.errors import NotFound, RlError

    failed: RlError | None = None
    for n in names:
        try:
            click.echo(networks.remove(n))
        except NotFound as exc:
            if not force:
                failed = failed or exc
        except RlError as exc:
            failed = failed or exc
    if failed:
        raise failed


@network.command("connect")
@click.option("--alias", "aliases", multiple=True, help="Another name on this network.")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container")
def connect(aliases, network_name, container) -> None:
    """Connect a container (on a user-defined network already) to another network."""
    from rootless.engine import netconnect

    netconnect.connect(network_name, container, list(aliases))


@network.command("disconnect")
@click.option("-f", "--force", is_flag=True, help="Accepted for Docker compatibility.")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container")
def disconnect(force, network_name, container) -> None:
    """Disconnect a container from a network."""
    from rootless.engine import netconnect

    netconnect.disconnect(network_name, container)


@network.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="label=KEY[=VALUE], label!=KEY[=VALUE] or until=TIME.")
def prune(force, filters) -> None:
    """Remove every network no container uses."""
    from rootless.cli import system as cli_system
    from rootless.engine import system as engine_system

    flt = cli_system.prune_filters(filters)
    if not force:
        cli_system.ask("WARNING! This will remove all custom networks not used by at least "
                       "one container.", "network prune")
    removed = engine_system.prune_networks(flt).networks
    if removed:
        click.echo("Deleted Networks:")
        for name in removed:
            click.echo(name)


@click.command()
@click.argument("container")
@click.argument("private_port", required=False)
@click.option("--format", "fmt", metavar="FORMAT",
              help="json or a Go template over .ContainerPort .Protocol .HostIp .HostPort.")
def port(container, private_port, fmt) -> None:
    """List a container's published ports, or the host side of one (PORT[/PROTO])."""
    from rootless.engine import networks

    if fmt:
        options.compile_format(fmt)
    if private_port and not fmt:
        for m in networks.published_port(container, private_port)[1]:
            click.echo(m.host())
        return
    _name, mappings = networks.container_ports(container)
    if fmt:
        docs = [{"ContainerPort": str(m.container_port), "Protocol": m.protocol,
                 "HostIp": m.host_ip or "0.0.0.0", "HostPort": str(m.host_port)}
                for m in sorted(mappings, key=lambda m: (m.container_port, m.protocol))
                if not private_port or f"{m.container_port}/{m.protocol}" in (
                    private_port, f"{private_port}/tcp")]
        options.echo_formatted(fmt, docs, {"ContainerPort": "CONTAINER PORT",
                                           "Protocol": "PROTOCOL", "HostIp": "HOST IP",
                                           "HostPort": "HOST PORT"})
        return
    for m in sorted(mappings, key=lambda m: (m.container_port, m.protocol)):
        click.echo(str(m))
