//! The binary is wasmtime-cli 48.0.8's `serve` command. (Having an integration test also makes
//! `cargo test --workspace` build the binary that `tests/all/wasmtime_serve.rs` runs, in the same
//! build as the host, sharing its wasmtime crates.)

use std::process::Command;

#[test]
fn it_is_wasmtime_cli_48_0_8s_serve_command() {
    let bin = env!("CARGO_BIN_EXE_wasmtime-serve");
    let version = Command::new(bin).arg("--version").output().expect("runs");
    assert!(
        String::from_utf8_lossy(&version.stdout).contains("48.0.8"),
        "{}",
        String::from_utf8_lossy(&version.stdout)
    );
    let help = Command::new(bin)
        .args(["serve", "--help"])
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    for option in ["--addr", "-S, --wasi", "-O, --optimize"] {
        assert!(
            help.contains(option),
            "`serve --help` lacks {option}: {help}"
        );
    }
}
