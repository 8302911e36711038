//! For tests only (unit and integration): how a test that cannot run on
//! this machine says so.

/// A test that cannot run here says so: a `SKIP` line on stderr and in the
/// skip log scripts/test counts (`$TIERBENCH_SKIP_LOG`). Under `CI=true`,
/// where root, QEMU, cpio, the font and the kernels are always there, a
/// skip is a failure.
pub fn skip(test: &str, why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} must run in CI, but: {why}"
    );
    let line = format!("SKIP {test}: {why}");
    crate::errln!("{line}");
    if let Some(log) = std::env::var_os("TIERBENCH_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// A complete `system.json` record of a native run on `kernel`, for tests
/// that build results directories by hand.
pub fn system_record(
    kernel: &str,
    host: Option<&str>,
    node_shape: &str,
) -> crate::report::schema::SystemRecord {
    use crate::report::schema::*;
    SystemRecord {
        schema_version: SCHEMA_VERSION,
        tool_version: "test".into(),
        git_revision: None,
        command_line: vec!["tierbench".into(), "run".into()],
        kernel_release: kernel.into(),
        kernel_cmdline: String::new(),
        emulated: false,
        machine: Machine {
            kind: MachineKind::Native,
            host_profile: host.map(String::from),
            accelerator: None,
            node_shape: node_shape.into(),
            memory_mib_per_node: vec![(0, Some(2048)), (1, Some(2048))],
        },
        scenario: Some(ScenarioRecord {
            name: "promote-hot".into(),
            path: "promote-hot.toml".into(),
            description: String::new(),
            text: String::new(),
        }),
        topology: serde_json::json!({}),
        capabilities: serde_json::json!({}),
        plan: serde_json::json!({}),
        knobs_requested: serde_json::json!({}),
        knobs_before: vec![],
        variants: vec![],
    }
}
