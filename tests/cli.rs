//! Command-line behaviour that needs no privileges: help, usage errors, configuration.

mod util;

use util::*;

#[test]
fn help_teaches_and_lists_exit_codes() {
    let out = run_host("garp-burst", &["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for want in [
        "--interface",
        "--ip",
        "--count",
        "--interval",
        "--reply",
        "--dry-run",
        "--json",
        "Exit codes:",
        "HAKIT_GARP_COUNT",
        "Examples:",
    ] {
        assert!(text.contains(want), "--help lacks {want}:\n{text}");
    }
    let out = run_host("garp-burst", &["-h"], &[]);
    assert!(stdout(&out).contains("3  superseded"));
}

#[test]
fn unknown_config_key_is_named() {
    let dir = std::env::temp_dir().join(format!("hakit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("typo.toml");
    std::fs::write(&conf, "[garp]\ninterface = \"eth0\"\ncuont = 3\n").unwrap();
    let out = run_host("garp-burst", &["--config", conf.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("typo.toml:3:1: unknown field `cuont`"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one-line error: {err}");

    // HAKIT_CONFIG is the same as --config.
    let out = run_host(
        "garp-burst",
        &[],
        &[("HAKIT_CONFIG", conf.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown field `cuont`"));

    let out = run_host("garp-burst", &["--config", "/nonexistent/hakit.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read config /nonexistent/hakit.toml"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn garbage_arguments_never_panic() {
    let cases: &[&[&str]] = &[
        &["--count", "99999999999999999999"],
        &["--interval", "1e400s"],
        &["--interval", "999999999999999999999h"],
        &["--ip", ""],
        &["-i", "\u{1F600}"],
        &["--reply=maybe"],
        &["--bogus"],
    ];
    for args in cases {
        let out = run_host("garp-burst", args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}");
    }
}

#[test]
fn shipped_example_config_is_valid() {
    let out = run_host(
        "garp-burst",
        &["--config", "examples/hakit.toml", "-i", "lo", "--dry-run"],
        &[],
    );
    // The file parses (a config error would be exit 2 with "config examples/hakit.toml:").
    assert!(
        !stderr(&out).contains("config examples/hakit.toml"),
        "{}",
        stderr(&out)
    );
}
