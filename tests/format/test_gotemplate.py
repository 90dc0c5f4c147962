"""rootless/format/gotemplate.py against Go's and Docker's documented output.

Expected strings come from the Go text/template documentation, Docker's "Format command
and log output" page, and the `docker ps/inspect --format` reference examples (their
documents reduced to the fields used)."""

from __future__ import annotations

import json

import pytest

from rootless.format.gotemplate import Template, TemplateError
from rootless.format.render import render
from rootless.format.tabwriter import format_table

# a `docker inspect` document, as the raw JSON map Docker falls back to
CONTAINER = {
    "Id": "a762a2b37a1d0c6fe3c9e2b0d19e2f3e2f1c7b0c0a3b2b2c1d2e3f4a5b6c7d8e",
    "Name": "/web",
    "Args": ["-g", "daemon off;"],
    "State": {"Status": "running", "Running": True, "Paused": False, "Pid": 4242,
              "ExitCode": 0},
    "Config": {"Env": ["PATH=/usr/bin", "NGINX_VERSION=1.25"], "Cmd": None,
               "Labels": {"maintainer": "NGINX", "com.example.tier": "web"},
               "ExposedPorts": {"80/tcp": {}}},
    "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"},
                                     "back": {"IPAddress": "10.1.0.5"}},
                        "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                                  "443/tcp": None}},
    "Mounts": [{"Type": "volume", "Name": "data", "Destination": "/data", "RW": True}],
    "Image": "nginx:latest",
    "Size": 1234.0,
}


def run(text: str, data=CONTAINER) -> str:
    return Template(text).execute(data)


@pytest.mark.parametrize("text,expected", [
    # Docker's inspect reference
    ("{{.State.Running}}", "true"),
    ("{{.State.Paused}}", "false"),
    ("{{.State.Pid}}", "4242"),
    ("{{json .Config.Env}}", '["PATH=/usr/bin","NGINX_VERSION=1.25"]'),
    ("{{json .Mounts}}", '[{"Type":"volume","Name":"data","Destination":"/data","RW":true}]'),
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "10.1.0.5172.17.0.2"),
    # a nil map value prints <no value> as an action's result, <nil> inside a map
    ("{{range $p, $conf := .NetworkSettings.Ports}}{{$p}}={{$conf}};{{end}}",
     "443/tcp=<no value>;80/tcp=[map[HostIp:0.0.0.0 HostPort:8080]];"),
    ("{{.NetworkSettings.Ports}}",
     "map[443/tcp:<nil> 80/tcp:[map[HostIp:0.0.0.0 HostPort:8080]]]"),
    ("{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}", "8080"),
    ("{{index .Config.Labels \"com.example.tier\"}}", "web"),
    # printing: maps sorted by key, slices in brackets, nil, missing keys
    ("{{.Config.Labels}}", "map[com.example.tier:web maintainer:NGINX]"),
    ("{{.Args}}", "[-g daemon off;]"),
    ("{{.Config.Cmd}}", "<no value>"),
    ("{{.NoSuchKey}}", "<no value>"),
    ("{{.State.Health.Status}}", "<no value>"),
    ("{{.Config.ExposedPorts}}", "map[80/tcp:map[]]"),
    ("{{.Size}}", "1234"),  # a JSON number is a float64, which Go prints without .0
    # Docker's functions ("Format command and log output")
    ('{{join .Args " , "}}', "-g , daemon off;"),
    ('{{split .Image ":"}}', "[nginx latest]"),
    ("{{lower .Name}}", "/web"),
    ("{{upper .Name}}", "/WEB"),
    ('{{title "hello world"}}', "Hello World"),
    ('{{truncate .Image 5}}', "nginx"),
    ('{{pad .State.Status 2 3}}', "  running   "),
    ("{{range .NetworkSettings.Networks}}{{println .IPAddress}}{{end}}",
     "10.1.0.5\n172.17.0.2\n"),
    # Go's functions and printf verbs
    ('{{printf "%s|%-10s|%10s|" "a" "b" "c"}}', "a|b         |         c|"),
    ('{{printf "%d %5d %-5d| %05d %x %X %o %q" 42 42 42 42 255 255 8 "hi\\n"}}',
     '42    42 42   | 00042 ff FF 10 "hi\\n"'),
    ('{{printf "%v %v %v %t" .Args .State.Running 1.5 true}}', "[-g daemon off;] true 1.5 true"),
    ('{{printf "%.2f %s" 3.14159}}', "3.14 %!s(MISSING)"),
    ('{{printf "%d" "x"}}', "%!d(string=x)"),
    ('{{printf "%s" 1 2}}', "%!s(int=1)%!(EXTRA int=2)"),
    ("{{len .Config.Env}} {{len .Name}} {{len .Config.Labels}}", "2 4 2"),
    ('{{print "a" 1 2 "b"}}', "a1 2b"),
    ('{{slice .Name 1}}', "web"),
    ('{{html "<a&b>"}}', "&lt;a&amp;b&gt;"),
    ('{{urlquery "a b&c"}}', "a+b%26c"),
    # pipelines, parentheses, variables
    ('{{.Name | upper | printf "%s!"}}', "/WEB!"),
    ('{{$n := .State.Pid}}{{$n}} {{$.Name}}', "4242 /web"),
    ('{{$x := 1}}{{$x = 2}}{{$x}}', "2"),
    ('{{with $s := .State}}{{$s.Status}}{{end}}', "running"),
    ('{{(index .Mounts 0).Name}}', "data"),
    ('{{range $i, $e := .Args}}{{$i}}:{{$e}} {{end}}', "0:-g 1:daemon off; "),
    ('{{range $e := .Args}}[{{$e}}]{{end}}', "[-g][daemon off;]"),
    ('{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}',
     "com.example.tier=web,maintainer=NGINX,"),
    ("{{range .Config.Cmd}}x{{else}}none{{end}}", "none"),
    ("{{range .Args}}{{if eq . \"-g\"}}{{continue}}{{end}}{{.}}{{end}}", "daemon off;"),
    ("{{range .Args}}{{.}}{{break}}{{end}}", "-g"),
    ("{{range 3}}{{.}}{{end}}", "012"),
    # conditions and comparisons
    ('{{if .State.Running}}up{{else}}down{{end}}', "up"),
    ('{{if .State.Paused}}p{{else if .State.Running}}r{{else}}x{{end}}', "r"),
    ('{{if eq .State.Status "exited" "running"}}y{{end}}', "y"),
    ('{{if ne .State.ExitCode 0}}bad{{else}}ok{{end}}', "ok"),
    ('{{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1 2}}', "true true true false"),
    ('{{and .State.Running .Name}} {{or .Config.Cmd "dflt"}} {{not .State.Paused}}',
     "/web dflt true"),
    ('{{and 0 (index .Args 99)}}', "0"),  # short-circuit: index is never called
    ('{{with .Config.Cmd}}set{{else}}unset{{end}}', "unset"),
    ('{{with .NoSuchKey}}a{{else with .State}}{{.Status}}{{end}}', "running"),
    # whitespace trimming and comments
    ("a  {{- .State.Status -}}  b", "arunningb"),
    ("{{- /* a comment */ -}}\n  x", "x"),
    ("{{/* comment */}}y", "y"),
    ("{{23 -}} < {{- 45}}", "23<45"),
    # literals
    ("{{'a'}} {{0x10}} {{1e3}} {{-2}} {{`raw\\n`}} {{true}}", "97 16 1000 -2 raw\\n true"),
])
def test_template(text, expected):
    assert run(text) == expected


def test_json_of_a_document_round_trips():
    out = run("{{json .}}")
    assert json.loads(out) == json.loads(json.dumps(CONTAINER).replace("1234.0", "1234"))
    assert out.endswith('"Size":1234}') and "\n" not in out


@pytest.mark.parametrize("text,message", [
    ("{{.Name", "unclosed action"),
    ("{{if .Name}}x", "has no {{end}}"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{nosuchfunc .Name}}", 'function "nosuchfunc" not defined'),
    ("{{break}}", "outside {{range}}"),
    ('{{"abc}}', "unterminated quoted string"),
    ("{{define \"x\"}}{{end}}", "not supported"),
])
def test_parse_errors(text, message):
    with pytest.raises(TemplateError, match="template: :1:") as exc:
        Template(text)
    assert message in str(exc.value)


@pytest.mark.parametrize("text,message", [
    ("{{index .Args 5}}", "index out of range: 5"),
    ("{{len .State.Pid}}", "len of type int"),
    ('{{eq .Name 1}}', "incompatible types for comparison"),
    ("{{.Name.Foo}}", "can't evaluate field Foo in type string"),
    ("{{.Config.Cmd.X}}", "nil pointer evaluating interface {}.X"),
    ("{{join .Name \",\"}}", "expected []string"),
    ("{{$nope}}", "undefined variable: $nope"),
])
def test_execution_errors(text, message):
    with pytest.raises(TemplateError) as exc:
        run(text)
    assert message in str(exc.value)


# -- Docker's table directive and JSON lines (docs of `docker ps --format`) ---------------

PS_ROWS = [
    {"ID": "a87ecb4f327c", "Names": "fervent_newton", "Command": '"nginx -g \'daemon of…"',
     "Status": "Up 5 seconds", "Labels": "com.docker.swarm.node=ubuntu,com.docker.swarm.storage=ssd"},
    {"ID": "01946d9d34d8", "Names": "vigorous_mirzakhani", "Command": '"top"',
     "Status": "Exited (0) 2 hours ago", "Labels": ""},
]
PS_HEADER = {"ID": "CONTAINER ID", "Names": "NAMES", "Command": "COMMAND", "Status": "STATUS",
             "Labels": "LABELS"}


def test_table_with_docker_headers_and_tabwriter_padding():
    # docker ps --format "table {{.ID}}\t{{.Labels}}" (Docker's reference, two columns)
    out = render("table {{.ID}}\\t{{.Names}}\\t{{.Status}}", PS_ROWS, PS_HEADER)
    assert out == (
        "CONTAINER ID   NAMES                 STATUS\n"
        "a87ecb4f327c   fervent_newton        Up 5 seconds\n"
        "01946d9d34d8   vigorous_mirzakhani   Exited (0) 2 hours ago\n")


def test_table_minimum_width_is_ten():
    # Docker's tabwriter: minwidth 10, padding 3: a short column still takes 10 cells
    out = render("table {{.ID}}\t{{.Names}}", [{"ID": "ab", "Names": "x"}],
                 {"ID": "ID", "Names": "NAMES"})
    assert out == "ID        NAMES\nab        x\n"


def test_table_header_for_functions_and_unknown_columns():
    out = render("table {{upper .Names}}\t{{.Status}}", PS_ROWS[:1], PS_HEADER)
    assert out.splitlines()[0] == "NAMES            STATUS"


def test_table_header_printed_with_no_rows():
    assert render("table {{.ID}}\t{{.Names}}", [], PS_HEADER) == "CONTAINER ID   NAMES\n"


def test_plain_template_one_line_per_object_no_alignment():
    assert render("{{.ID}}: {{.Command}}", PS_ROWS, PS_HEADER) == (
        "a87ecb4f327c: \"nginx -g 'daemon of…\"\n01946d9d34d8: \"top\"\n")


def test_json_lines():
    out = render("json", PS_ROWS)
    lines = out.splitlines()
    assert len(lines) == 2
    assert [json.loads(x)["Names"] for x in lines] == ["fervent_newton", "vigorous_mirzakhani"]


def test_tabwriter_column_blocks_as_go():
    # Go's text/tabwriter example (cells terminated by tabs; padding 1, minwidth 0 there):
    text = "a\tb\tc\naa\tbb\tcc\naaa\t\nx\n"
    assert format_table(text, minwidth=0, padding=1) == (
        "a   b  c\naa  bb cc\naaa \nx\n")
