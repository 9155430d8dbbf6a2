//! The built `wua` binary, run as a user would run it.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output, Stdio};

fn wua<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_wua"))
        .args(args)
        .env_clear()
        .output()
        .expect("wua runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn explain_accepts_every_spelling_of_a_code() {
    for spelling in [
        "0x80240020",
        "2149842976",
        "-2145124320",
        "WU_E_NO_INTERACTIVE_USER",
        "wu_e_no_interactive_user",
    ] {
        let output = wua(["explain", spelling]);
        assert!(output.status.success(), "{spelling}: {}", stderr(&output));
        let text = stdout(&output);
        assert!(
            text.starts_with("0x80240020 WU_E_NO_INTERACTIVE_USER\n"),
            "{text}"
        );
        assert!(text.contains("signed -2145124320"), "{text}");
        assert!(text.contains("wua context"), "{text}");
    }
}

#[test]
fn explain_json_is_an_array_of_explanations() {
    let output = wua([
        "explain",
        "--json",
        "0x80240024",
        "orcSucceededWithErrors",
        "0x80070002",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json[0]["kind"], "code");
    assert_eq!(json[0]["hresult"], "0x80240024");
    assert_eq!(json[0]["name"], "WU_E_NO_UPDATE");
    assert_eq!(json[0]["signed"], -2_145_124_316);
    assert_eq!(json[1]["kind"], "enumMember");
    assert_eq!(json[1]["enum"], "OperationResultCode");
    assert_eq!(json[1]["value"], 3);
    assert_eq!(json[2]["name"], serde_json::Value::Null);
    assert_eq!(json[2]["facility"], 7);
}

/// Issue 17: options go after the codes, as in every other command; a
/// negative decimal code stays a code, and `--` ends the options.
#[test]
fn explain_takes_json_after_the_codes_and_negative_codes_anywhere() {
    for args in [
        &["explain", "0x80240020", "--json"][..],
        &["explain", "-2145124320", "--json"],
        &["explain", "--json", "-2145124320"],
        &["explain", "--json", "--", "-2145124320"],
    ] {
        let output = wua(args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        let json: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("{args:?}: {error}: {}", stdout(&output)));
        assert_eq!(json.as_array().map(Vec::len), Some(1), "{args:?}: {json}");
        assert_eq!(json[0]["name"], "WU_E_NO_INTERACTIVE_USER", "{args:?}");
    }
    // Text still, with a negative code after `--`.
    let output = wua(["explain", "--", "-2145124320"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("0x80240020 WU_E_NO_INTERACTIVE_USER\n"));
    // An unknown option is an error, not a code to explain.
    let output = wua(["explain", "0x80240020", "--jsno"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--jsno"), "{}", stderr(&output));
}

#[test]
fn explain_rejects_what_is_not_a_code() {
    let output = wua(["explain", "WU_E_NOT_A_CODE"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("neither a result code nor an enum member"));
}

#[test]
fn criteria_check_prints_the_normalized_form() {
    let output = wua(["criteria", "check", "isinstalled=0 AND type='software'"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "IsInstalled=0 and Type='Software'\n");

    let output = wua(["criteria", "check", ""]);
    assert_eq!(stdout(&output), "IsInstalled=0 and IsHidden=0\n");
}

#[test]
fn criteria_check_puts_a_caret_under_the_error() {
    let output = wua([
        "criteria",
        "check",
        "IsInstalled=0 and (IsHidden=0 or IsHidden=1)",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("wua: 0x80240032 WU_E_INVALID_CRITERIA: at byte 30: "),
        "{text}"
    );
    assert_eq!(lines[1], "  IsInstalled=0 and (IsHidden=0 or IsHidden=1)");
    assert_eq!(lines[2], format!("  {}^", " ".repeat(30)));
}

#[test]
fn criteria_check_json_reports_the_error() {
    let output = wua(["criteria", "check", "--json", "IsInstalled!=0"]);
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["hresult"], "0x80240032");
    assert_eq!(json["offset"], 11);
}

#[test]
fn criteria_check_handles_invalid_utf8_and_long_input() {
    let criteria = OsStr::from_bytes(b"IsInstalled=0 and Type='\xffSoftware'");
    let output = wua([OsStr::new("criteria"), OsStr::new("check"), criteria]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("at byte 24: the criteria are not valid UTF-8"),
        "{text}"
    );

    let long = format!("{}IsInstalled=0{}", "(".repeat(50_000), ")".repeat(50_001));
    let output = wua(["criteria", "check", &long]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("at byte 100013: this ')' closes no '('"),
        "{text}"
    );
    assert!(
        text.lines().nth(1).unwrap().chars().count() < 140,
        "the line is cut to a window"
    );
}

#[test]
fn criteria_check_reads_standard_input() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wua"))
        .args(["criteria", "check", "-"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ten megabytes: more than a command line can carry.
    let criteria = format!("IsInstalled=0 and\n Type='{}'", "x".repeat(10 << 20));
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(criteria.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("at byte 24: Type takes 'Software' or 'Driver' (line 2, column 7)"),
        "{text}"
    );
    assert!(text.len() < 1000, "the window keeps the report short");
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_wua"))
        .args(["explain", "--json", "0x80240020"])
        .env_clear()
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
}

/// `wua` with one more environment variable than [`wua`] leaves it.
fn wua_with_socket<I, S>(socket: &std::path::Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_wua"))
        .args(args)
        .env_clear()
        .env("OPENWUA_SOCKET", socket)
        .output()
        .expect("wua runs")
}

/// A socket path nothing listens on.
fn missing_socket(name: &str) -> std::path::PathBuf {
    let socket = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_file(&socket);
    socket
}

#[test]
fn search_without_an_agent_says_how_to_reach_one() {
    let socket = missing_socket("no-agent-search.sock");
    let output = wua_with_socket(&socket, ["search"]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("wua: 0x80240001 WU_E_NO_SERVICE: "),
        "{text}"
    );
    assert!(
        lines[1].contains(&*socket.to_string_lossy()),
        "the socket tried is named: {text}"
    );
    assert!(
        lines[2].starts_with("  hint: start wua-agent") && lines[2].contains("--embedded"),
        "{text}"
    );
    assert_eq!(stdout(&output), "");
}

#[test]
fn the_socket_option_beats_the_environment() {
    let from_environment = missing_socket("no-agent-environment.sock");
    let from_option = missing_socket("no-agent-option.sock");
    let output = wua_with_socket(
        &from_environment,
        [
            OsStr::new("status"),
            OsStr::new("--socket"),
            from_option.as_os_str(),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("no-agent-option.sock"), "{text}");
    assert!(!text.contains("no-agent-environment.sock"), "{text}");
}

#[test]
fn search_checks_the_criteria_before_connecting() {
    let socket = missing_socket("no-agent-criteria.sock");
    let output = wua_with_socket(&socket, ["search", "bad criteria ("]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("wua: 0x80240032 WU_E_INVALID_CRITERIA: at byte 0: "),
        "{text}"
    );
    assert_eq!(lines[1], "  bad criteria (");
    assert_eq!(lines[2], "  ^");
    assert!(
        !text.contains("WU_E_NO_SERVICE"),
        "no agent was asked: {text}"
    );
}

#[test]
fn help_lists_the_new_commands_and_exit_statuses() {
    let output = wua(["--help"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for command in [
        "download",
        "install",
        "uninstall",
        "update",
        "jobs",
        "watch",
        "abort",
    ] {
        assert!(
            text.lines()
                .any(|line| line.trim_start().starts_with(command)),
            "{command}: {text}"
        );
    }
    assert!(
        text.contains("4 some updates failed")
            && text.contains("6 (`wua status` only) a\nrestart is pending")
            && text.contains("A restart needed by an installation is reported"),
        "{text}"
    );

    let output = wua(["install", "--help"]);
    let text = stdout(&output);
    for option in [
        "--all",
        "--accept-eulas",
        "--quiet",
        "--force",
        "--no-download",
        "--json",
    ] {
        assert!(text.contains(option), "{option}: {text}");
    }
    assert!(text.contains("WU_E_EULAS_DECLINED"), "{text}");

    let output = wua(["download", "--help"]);
    let text = stdout(&output);
    assert!(text.contains("extra-high"), "{text}");
}

/// `wua args…` exited 2 with nothing on stdout and stderr starting with
/// `message`.
fn assert_exit_2(args: &[&str], output: &Output, message: &str) {
    assert_eq!(
        output.status.code(),
        Some(2),
        "{args:?}: {}",
        stderr(output)
    );
    assert!(
        stderr(output).starts_with(message),
        "{args:?}: {}",
        stderr(output)
    );
    assert_eq!(stdout(output), "", "{args:?}");
}

#[test]
fn updates_are_named_or_all_but_not_both() {
    let id = "f69a4107-4c9a-54bc-a9e9-16df277113c1";
    for args in [
        vec!["download"],
        vec!["install"],
        vec!["uninstall"],
        vec!["download", "--all", id],
        vec!["install", id, "--all"],
        vec!["uninstall", "--all"],
        vec!["download", id, "--priority", "urgent"],
        vec!["watch", "not-a-job-id"],
        vec!["abort"],
        vec!["update", id],
    ] {
        assert_exit_2(&args, &wua(&args), "error: ");
    }
}

#[test]
fn the_new_commands_parse_and_then_need_an_agent() {
    let socket = missing_socket("no-agent-operations.sock");
    let id = "f69a4107-4c9a-54bc-a9e9-16df277113c1";
    for args in [
        vec![
            "download",
            "--all",
            "--priority",
            "extra-high",
            "--force",
            "--json",
        ],
        vec![
            "install",
            id,
            "--accept-eulas",
            "--quiet",
            "--force",
            "--no-download",
        ],
        vec!["uninstall", id, "--quiet", "--force", "--json"],
        vec!["update", "--accept-eulas", "--quiet", "--json"],
        vec!["jobs", "--json"],
        vec!["watch", id, "--json"],
        vec!["abort", id],
    ] {
        assert_exit_2(
            &args,
            &wua_with_socket(&socket, &args),
            "wua: 0x80240001 WU_E_NO_SERVICE: ",
        );
    }
}
