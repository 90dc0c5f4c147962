"""`rl network create/ls/inspect/rm/prune` and `rl port` through the real rl command, and
the engine's attach/release of containers with the holder."""

from __future__ import annotations

import json
import os
import time

import pytest

from rootless.engine import networks
from rootless.network import etcfiles, ports
from rootless.network.holder import Holder
from rootless.store import catalog, containerdb
from tests.network.conftest import BUSYBOX, http_get


def ok(rl, *args):
    res = rl(*args)
    assert res.returncode == 0, res.stderr
    return res.stdout


def error_line(res) -> str:
    assert res.returncode == 125, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("rl: error: ")
    return lines[0]


def test_create_ls_inspect_rm(rl):
    net_id = ok(rl, "network", "create", "front").strip()
    assert len(net_id) == 64
    ok(rl, "network", "create", "--subnet", "10.90.7.0/24", "--label", "team=web", "back")
    out = ok(rl, "network", "ls").splitlines()
    assert out[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    rows = {line.split()[1]: line.split() for line in out[1:]}
    assert rows["front"] == [net_id[:12], "front", "bridge", "local"]
    subnet = json.loads(ok(rl, "network", "inspect", "front"))[0]["IPAM"]["Config"][0]["Subnet"]
    assert subnet == "10.89.0.0/24"
    assert ok(rl, "network", "ls", "-q").split() == [rows["back"][0], net_id[:12]]  # by name
    [doc] = json.loads(ok(rl, "network", "inspect", "back"))
    assert doc["Name"] == "back" and doc["Driver"] == "bridge"
    assert doc["IPAM"]["Config"] == [{"Subnet": "10.90.7.0/24", "Gateway": "10.90.7.1"}]
    assert doc["Labels"] == {"team": "web"}
    assert doc["Containers"] == {}
    [by_id] = json.loads(ok(rl, "network", "inspect", net_id[:10]))
    assert by_id["Name"] == "front"
    assert ok(rl, "network", "rm", "front", "back").split() == ["front", "back"]
    assert ok(rl, "network", "ls", "-q") == ""


@pytest.mark.parametrize(("args", "message"), [
    (["create", "bad name"], "invalid network name 'bad name'"),
    (["create", "host"], "network name host is reserved"),
    (["create", "--subnet", "10.0.2.0/24", "n1"], "overlaps slirp4netns's 10.0.2.0/24"),
    (["create", "--subnet", "10.91.0.1/24", "n1"], "invalid subnet 10.91.0.1/24"),
    (["create", "--subnet", "nonsense", "n1"], "invalid subnet nonsense"),
    (["create", "--subnet", "10.91.0.0/24", "--gateway", "10.92.0.1", "n1"],
     "gateway 10.92.0.1 is not a host address of 10.91.0.0/24"),
    (["create", "-d", "macvlan", "n1"], "network driver macvlan is not supported"),
    (["rm", "nope"], "network nope not found"),
    (["inspect", "nope"], "network nope not found"),
])
def test_bad_input_is_one_line_and_changes_nothing(rl, args, message):
    ok(rl, "network", "create", "--subnet", "10.93.0.0/24", "keep")
    line = error_line(rl("network", *args))
    assert message in line
    assert ok(rl, "network", "ls", "-q").count("\n") == 1


def test_duplicate_name_and_overlapping_subnet(rl):
    ok(rl, "network", "create", "--subnet", "10.94.0.0/16", "a")
    assert "network with name a already exists" in error_line(rl("network", "create", "a"))
    line = error_line(rl("network", "create", "--subnet", "10.94.5.0/24", "b"))
    assert "subnet 10.94.5.0/24 overlaps network a (10.94.0.0/16)" in line
    # automatic subnets skip taken ones
    ok(rl, "network", "create", "--subnet", "10.89.0.0/24", "c")
    ok(rl, "network", "create", "d")
    assert json.loads(ok(rl, "network", "inspect", "d"))[0]["IPAM"]["Config"][0]["Subnet"] == \
        "10.89.1.0/24"


def test_rm_in_use_and_prune(rl):
    ok(rl, "network", "create", "used")
    ok(rl, "network", "create", "idle1")
    ok(rl, "network", "create", "idle2")
    ep = networks.reserve_endpoint("used", "c" * 64, "web", ["www"], root=rl.data_dir)
    assert ep["ip"] == "10.89.0.2"
    line = error_line(rl("network", "rm", "used"))
    assert "network used is in use by container(s) web" in line
    [doc] = json.loads(ok(rl, "network", "inspect", "used"))
    assert doc["Containers"]["c" * 64] == {"Name": "web", "IPv4Address": "10.89.0.2/24",
                                          "Aliases": ["www"]}
    out = ok(rl, "network", "prune", "-f")
    assert out.splitlines() == ["Deleted Networks:", "idle1", "idle2"]
    assert ok(rl, "network", "ls", "-q").count("\n") == 1
    networks.release("c" * 64, root=rl.data_dir)
    assert ok(rl, "network", "rm", "used").strip() == "used"


def test_port_lists_a_containers_published_ports(rl):
    assert "no such container: web" in error_line(rl("port", "web"))
    rl.data_dir.mkdir(parents=True, exist_ok=True)
    # a created container's record, as create() writes it (no monitor, nothing listens)
    ports = [{"container_port": 80, "protocol": "tcp", "host_ip": "127.0.0.1", "host_port": 8080},
             {"container_port": 53, "protocol": "udp", "host_ip": "", "host_port": 5353}]
    db = catalog.connect(rl.data_dir)
    with catalog.transaction(db):
        containerdb.insert(db, cid="ab" * 32, name="web", image_id="", image="busybox",
                           command=["true"], created=0.0, labels={}, options={"ports": ports})
    db.close()
    assert ok(rl, "port", "web").splitlines() == ["53/udp -> 0.0.0.0:5353",
                                                  "80/tcp -> 127.0.0.1:8080"]
    assert ok(rl, "port", "abab", "80").strip() == "127.0.0.1:8080"
    assert ok(rl, "port", "web", "53/udp").strip() == "0.0.0.0:5353"
    assert "no public port '81/tcp' published for web" in error_line(rl("port", "web", "81"))


def test_attach_publish_release(netns_factory, webroot, tmp_path, sockdir, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(sockdir))  # short: slirp's socket lives there
    root = tmp_path / "data"
    networks.create("app", root=root)
    networks.create("other", root=root)
    # the runtime makes the container's user ns inside the holder's, so it starts it first
    holder = Holder.ensure(networks.holder_state_file(),
                           slirp_socket=networks.holder_slirp_socket())
    try:
        web = netns_factory(holder.pid, own_user=True)
        client = netns_factory(holder.pid, own_user=True)
        stranger = netns_factory(holder.pid, own_user=True)
        networks.reserve_endpoint("app", "1" * 64, "web", ["www"], root=root)
        networks.reserve_endpoint("app", "2" * 64, "client", root=root)
        networks.reserve_endpoint("other", "3" * 64, "stranger", root=root)
        assert networks.attach("1" * 64, web.pid, root=root) == \
            [{"network": "app", "ip": "10.89.0.2", "interface": "eth0"}]
        networks.attach("2" * 64, client.pid, root=root)
        networks.attach("3" * 64, stranger.pid, root=root)
        assert networks.hosts_entries("2" * 64, root=root) == [("web", "10.89.0.2"),
                                                               ("www", "10.89.0.2")]
        assert networks.hosts_entries("3" * 64, root=root) == []
        web.spawn(BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(webroot))
        for _ in range(20):
            res = client.run("timeout", "2", BUSYBOX, "wget", "-q", "-O", "-",
                             "http://10.89.0.2/", check=False)
            if res.returncode == 0:
                break
            time.sleep(0.1)
        assert res.stdout == "hello from the namespace\n"
        # by name and by alias, through the /etc/hosts the runtime would write
        hosts = tmp_path / "client-hosts"
        hosts.write_text(etcfiles.hosts("client", container_ip="10.89.0.3",
                                        extra=networks.hosts_entries("2" * 64, root=root)))
        for name in ("web", "www"):
            res = client.run("unshare", "--mount", "sh", "-c",
                             f"mount --bind {hosts} /etc/hosts && timeout 2 {BUSYBOX} wget -q "
                             f"-O - http://{name}/", check=False)
            assert res.stdout == "hello from the namespace\n", res.stderr
        res = stranger.run("timeout", "2", BUSYBOX, "wget", "-q", "-O", "-",
                           "http://10.89.0.2/", check=False)
        assert res.returncode != 0
        # -p 127.0.0.1::80 for web: host -> holder's slirp4netns -> DNAT -> web:80
        mappings = ports.allocate(ports.parse_publish("127.0.0.1::80"))
        networks.publish("1" * 64, mappings, root=root)
        url = f"http://127.0.0.1:{mappings[0].host_port}/"
        assert http_get(url) == "hello from the namespace\n"
        for cid in ("1", "2"):
            networks.release(cid * 64, root=root)
        assert holder.alive(), "a container still uses a network"
        assert not ports.port_in_use("tcp", "127.0.0.1", mappings[0].host_port)
        networks.release("3" * 64, root=root)
        assert not holder.alive(), "the holder ends with its last container"
        assert not os.path.exists(networks.holder_state_file(create=False))
    finally:
        holder.stop(networks.holder_state_file(create=False))
