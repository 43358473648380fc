"""`tfperf doctor`: every check passes on this machine (a real trace is recorded), and each kind of failure
says how to fix it."""

from __future__ import annotations

import pytest

from tfperf.profile import doctor
from tfperf.profile.doctor import FAIL, PASS, SKIP, Check


def test_duplicate_plugins_are_found_by_plugin_name():
    eps = [
        ("profile", "xprof.profile_plugin_loader:ProfilePluginLoader", "xprof"),
        ("projector", "tensorboard.plugins.projector.projector_plugin:ProjectorPlugin", "tensorboard"),
        ("profile", "tensorboard_plugin_profile.profile_plugin_loader:ProfilePluginLoader", "tbp-nightly"),
    ]
    dups = doctor.duplicate_plugins(eps)
    assert list(dups) == ["profile"]
    assert any("tbp-nightly" in p for p in dups["profile"])
    assert doctor.duplicate_plugins(eps[:2]) == {}


def test_render_gives_the_fix_of_each_failed_check_only():
    text = doctor.render(
        [
            Check("a", PASS, "fine", fix="never shown"),
            Check("b", FAIL, "broken", fix="do this"),
            Check("c", SKIP, "no GPU"),
        ]
    )
    assert "fix: do this" in text and "never shown" not in text
    assert "1 check(s) failed" in text


def test_cupti_is_skipped_without_a_gpu_and_a_failure_says_how_to_fix_it():
    assert doctor.check_cupti(False).status == SKIP
    # A GPU trace without device ops: CUPTI missing or not permitted; either way the check fails with a fix.
    failed = doctor.check_cupti(True, {"top_ops": [{"host_or_device": "Host"}], "overview": {}})
    assert failed.status == FAIL and failed.fix


def test_installation_checks_pass_here():
    checks = doctor.run_checks(trace=False)
    assert [c.name for c in checks] == ["tensorboard", "profile plugin", "plugins installed once"]
    assert all(c.status == PASS for c in checks), doctor.render(checks)


@pytest.mark.tensorflow
def test_tfperf_doctor_records_a_trace_and_exits_0(capsys):
    from tfperf.cli import main

    rc = main(["doctor"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "[  ok] trace written" in text
    assert "[  ok] step markers: the input-pipeline analyzer sees 3 of 3 steps" in text
    assert "all checks passed" in text


def test_tfperf_doctor_exits_1_when_a_check_fails(monkeypatch, capsys):
    from tfperf.cli import main

    monkeypatch.setattr(
        doctor,
        "run_checks",
        lambda trace=True: [
            Check("tensorboard", PASS, "tensorboard 2.21.0"),
            Check(
                "plugins installed once",
                FAIL,
                "Duplicate plugins: profile",
                fix="pip uninstall -y tbp-nightly",
            ),
        ],
    )
    assert main(["doctor", "--no-trace"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] plugins installed once" in out and "fix: pip uninstall -y tbp-nightly" in out
