"""POST /ssh/bastion, GET /ssh/get-hosts and `stepless ca ssh-bastion` against moto.

step-ca 0.19 (api/ssh.go SSHBastion, authority/ssh.go GetSSHBastion): 400 "missing or empty hostname"; the
configured ``ssh.bastion`` for every host but the bastion itself (case-insensitive); no ``bastion`` key
without one; 404 when the CA has no SSH.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from stepless import authority
from stepless.api.ssh import app
from stepless.cli import main as cli_main
from stepless.errors import ClientError, NotFound
from stepless.stores import audit
from tests.integration.test_ssh_sign import sign
from tests.support.ca import call
from tests.support.ca import initialize as init_ca

BASTION = {"hostname": "Bastion.Example.com", "user": "jump", "port": "2222", "cmd": "nc %h %p", "flags": "-q -A"}


@pytest.fixture
def run(test_ca):
    """``stepless ca ssh-bastion ARGS`` in-process against the test CA (its tables are in the environment)."""
    cli_main._register()
    runner = CliRunner()

    def invoke(*args: str):
        res = runner.invoke(cli_main.cli, ["ca", "ssh-bastion", *args], catch_exceptions=True)
        authority.reset()  # as a warm function would after STEPLESS_CONFIG_TTL
        return res

    return invoke


def ok(res):
    assert res.exit_code == 0, (res.output, res.exception)
    return res


def refused(res, match: str) -> str:
    assert res.exit_code != 0, res.output
    message = str(res.exception) if isinstance(res.exception, ClientError) else res.output
    assert match in message, message
    assert "\n" not in message.strip()
    return message


def _set_args(b: dict[str, str]) -> list[str]:
    return ["set", "--hostname", b["hostname"], "--user", b["user"], "--port", b["port"], "--command", b["cmd"],
            f"--flags={b['flags']}"]


def test_no_bastion_configured_means_connect_directly(test_ca):
    for prefix in ("", "/1.0"):
        assert call(app, "POST", f"{prefix}/ssh/bastion", {"user": "alice", "hostname": "db.example.com"}) == \
            (200, {"hostname": "db.example.com"})
    assert call(app, "POST", "/ssh/bastion", {"hostname": "db"}) == (200, {"hostname": "db"})  # user optional


@pytest.mark.parametrize("body", [{}, {"user": "alice"}, {"user": "alice", "hostname": ""}, None])
def test_missing_hostname_is_a_400_with_steps_message(test_ca, body):
    assert call(app, "POST", "/ssh/bastion", body) == \
        (400, {"status": 400, "message": "The request could not be completed: missing or empty hostname."})


@pytest.mark.parametrize("body", [{"hostname": 7}, {"hostname": ["a"]}, {"hostname": "h", "user": {"x": 1}}])
def test_wrongly_typed_fields_are_400(test_ca, body):
    status, out = call(app, "POST", "/ssh/bastion", body)
    assert status == 400 and out["message"].startswith(
        "The request could not be completed: error reading request body: "), out


def test_bastion_for_every_host_but_itself(test_ca, run):
    ok(run(*_set_args(BASTION)))
    status, body = call(app, "POST", "/1.0/ssh/bastion", {"user": "alice", "hostname": "db.example.com"})
    assert (status, body) == (200, {"hostname": "db.example.com", "bastion": BASTION})
    # the bastion host itself is reached directly (step-ca compares with strings.EqualFold)
    assert call(app, "POST", "/ssh/bastion", {"user": "alice", "hostname": "bastion.example.COM"}) == \
        (200, {"hostname": "bastion.example.COM"})


def test_optional_fields_are_left_out_like_steps_omitempty(test_ca, run):
    ok(run("set", "--hostname", "10.0.0.1"))
    assert call(app, "POST", "/ssh/bastion", {"hostname": "db"})[1] == {"hostname": "db",
                                                                       "bastion": {"hostname": "10.0.0.1"}}


def test_show_set_replace_remove_and_audit(test_ca, run):
    assert ok(run("show")).stdout.strip() == "null"
    res = ok(run(*_set_args(BASTION)))
    assert "✔ SSH bastion: Bastion.Example.com set" in res.stderr
    assert "✔ SSH bastion: jump2 replaced Bastion.Example.com" in \
        ok(run("set", "--hostname", "jump2", "--port", "022")).stderr
    ok(run("set", "--hostname", "jump3"))
    assert '"hostname": "jump3"' in ok(run("show")).stdout
    res = ok(run("remove"))
    assert "✔ SSH bastion: jump3 removed" in res.stderr
    assert ok(run("show")).stdout.strip() == "null"
    assert call(app, "POST", "/ssh/bastion", {"hostname": "db"}) == (200, {"hostname": "db"})
    refused(run("remove"), "no SSH bastion is configured")

    records = [r for r in audit.records() if r["action"].startswith("ssh.bastion.")]
    assert [(r["action"], r.get("provisioner", "")) for r in records] == [
        ("ssh.bastion.set", "Bastion.Example.com"), ("ssh.bastion.set", "jump2"), ("ssh.bastion.set", "jump3"),
        ("ssh.bastion.remove", "")]
    assert records[0]["change"] == {"before": None, "after": BASTION}
    assert records[1]["change"]["after"] == {"hostname": "jump2", "port": "22"}
    assert records[3]["change"] == {"before": {"hostname": "jump3"}, "after": None}


@pytest.mark.parametrize(("args", "match"), [
    (["--hostname", ""], "invalid bastion hostname ''"),
    (["--hostname", "-oProxyCommand=sh"], "invalid bastion hostname"),
    (["--hostname", "two words"], "invalid bastion hostname"),
    (["--hostname", "b", "--user", "-lroot"], "invalid bastion user"),
    (["--hostname", "b", "--port", "0"], "invalid bastion port '0'"),
    (["--hostname", "b", "--port", "65536"], "invalid bastion port"),
    (["--hostname", "b", "--port", "ssh"], "invalid bastion port 'ssh'"),
    (["--hostname", "b", "--command", "nc %h %p\nrm -rf /"], "invalid bastion command: one line"),
    (["--hostname", "b", "--flags", "x" * 2000], "invalid bastion flags"),
])
def test_set_refuses_bad_values_in_one_line(test_ca, run, args, match):
    refused(run("set", *args), match)
    assert ok(run("show")).stdout.strip() == "null"


def test_set_needs_the_ssh_ca(aws_env):
    init_ca(aws_env, ssh=False)
    cli_main._register()
    res = CliRunner().invoke(cli_main.cli, ["ca", "ssh-bastion", "set", "--hostname", "b"])
    refused(res, "cannot set a bastion: the CA has no SSH keys (run `stepless ca init --ssh`)")
    authority.reset()
    assert call(app, "POST", "/ssh/bastion", {"hostname": "db"}) == \
        (404, NotFound("ssh is not configured").to_json())


def test_get_hosts_is_the_hosts_answer(test_ca):
    assert sign(test_ca, "db.example.com", token_opts={"certType": "host"})[0] == 201
    hosts = call(app, "GET", "/ssh/hosts")
    assert hosts[1]["hosts"][0]["hostname"] == "db.example.com"
    for prefix in ("", "/1.0"):
        assert call(app, "GET", f"{prefix}/ssh/get-hosts") == hosts
    assert call(app, "POST", "/ssh/get-hosts")[0] == 405
