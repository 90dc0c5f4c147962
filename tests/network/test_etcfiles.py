"""The resolv.conf and hosts text a container gets."""

from rootless.network import etcfiles


def test_resolv_conf_points_at_slirp_dns():
    assert etcfiles.resolv_conf() == "nameserver 10.0.2.3\n"
    assert etcfiles.resolv_conf(cidr="10.99.0.0/24", search=["example.test"],
                                options=["ndots:2"]) == \
        "nameserver 10.99.0.3\nsearch example.test\noptions ndots:2\n"
    assert etcfiles.resolv_conf(["192.0.2.53"]) == "nameserver 192.0.2.53\n"


def test_hosts_names_localhost_container_and_host():
    text = etcfiles.hosts("web1")
    lines = [ln.split() for ln in text.splitlines()]
    assert ["127.0.0.1", "localhost", "localhost.localdomain"] in lines
    assert ["10.0.2.100", "web1"] in lines
    assert ["10.0.2.2", "host.containers.internal", "host.docker.internal"] in lines
    assert text.endswith("\n")


def test_hosts_without_network_and_extra():
    text = etcfiles.hosts("solo", container_ip="", extra=[("db", "192.0.2.5")])
    assert "127.0.0.1\tsolo" in text
    assert "host.containers.internal" not in text
    assert "192.0.2.5\tdb" in text


def test_host_search_options(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 1.1.1.1\nsearch a.test b.test\noptions ndots:3 edns0\n")
    assert etcfiles.host_search_options(str(conf)) == (["a.test", "b.test"], ["ndots:3", "edns0"])
