//! One test per kind of bad configuration: `landfall` must stop with one clear message
//! that names the key or value and what is accepted, and never print a secret.

use std::process::Output;

use landfall_tests::run;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn fails_with(output: &Output, expected: &[&str]) -> String {
    assert!(!output.status.success(), "landfall accepted a bad configuration");
    let message = stderr(output);
    for part in expected {
        assert!(message.contains(part), "message lacks {part:?}:\n{message}");
    }
    message
}

#[test]
fn an_unknown_key_in_the_file_is_named_with_the_accepted_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("landfall.toml"), "listn = \"127.0.0.1:3000\"\n").unwrap();
    let output = run(dir.path(), &["serve"], &[]);
    fails_with(&output, &["unknown setting `listn`", "landfall.toml", "listen", "database_url"]);
}

#[test]
fn an_unknown_environment_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["serve"], &[("LANDFALL_DATABASE", "x")]);
    fails_with(&output, &["unknown setting `database`", "LANDFALL_DATABASE", "database_url"]);
}

#[test]
fn a_value_of_the_wrong_type_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("custom.toml");
    std::fs::write(&config, "listen = 3000\n").unwrap();
    let output = run(dir.path(), &["serve", "--config", config.to_str().unwrap()], &[]);
    fails_with(&output, &["`listen`", "custom.toml", "wrong type", "string"]);
}

#[test]
fn a_bad_listen_address_says_what_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["serve", "--listen", "localhost"], &[]);
    fails_with(&output, &["--listen", "IP:PORT", "127.0.0.1:3000"]);
}

#[test]
fn a_bad_log_format_lists_the_formats() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["serve"], &[("LANDFALL_LOG_FORMAT", "xml")]);
    fails_with(&output, &["log_format", "LANDFALL_LOG_FORMAT", "text, json"]);
}

#[test]
fn a_malformed_database_url_is_refused_without_echoing_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["serve", "--database-url", "mysql://root:hunter2@db.internal/landfall"], &[]);
    let message = fails_with(&output, &["database_url", "`mysql` is not supported", "postgres://"]);
    assert!(!message.contains("hunter2"), "password leaked: {message}");

    let output = run(dir.path(), &["serve", "--database-url", "postgres://user:hunter2@:5432/x"], &[]);
    let message = fails_with(&output, &["database_url", "malformed PostgreSQL URL", "empty host"]);
    assert!(!message.contains("hunter2"), "password leaked: {message}");
}

#[test]
fn an_unreachable_database_is_named_with_its_password_hidden() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let url = "postgres://landfall:hunter2@127.0.0.1:1/landfall";
    let data = dir.path().join("data");
    let output = run(dir.path(), &["serve", "--database-url", url, "--data-dir", data.to_str().unwrap()], &[]);
    let message = fails_with(&output, &["cannot open the database", "127.0.0.1:1", "***", "refused"]);
    assert!(!message.contains("hunter2"), "password leaked: {message}");
}

#[test]
fn an_unopenable_sqlite_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = format!("sqlite://{}/no/such/dir/ledger.db", dir.path().display());
    let output = run(dir.path(), &["serve", "--database-url", &url, "--data-dir", data.to_str().unwrap()], &[]);
    fails_with(&output, &["cannot open the database", "no/such/dir/ledger.db"]);
}

#[test]
fn an_unwritable_data_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // A path under a regular file cannot be created, even by root.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "not a directory").unwrap();
    let data = blocker.join("data");
    let output = run(dir.path(), &["serve", "--data-dir", data.to_str().unwrap()], &[]);
    fails_with(&output, &["data directory", "blocker/data", "--data-dir"]);
}

#[test]
fn a_missing_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["serve", "--config", "nowhere.toml"], &[]);
    fails_with(&output, &["nowhere.toml", "does not exist"]);
}

#[test]
fn help_describes_every_option() {
    let dir = tempfile::tempdir().unwrap();
    let top = run(dir.path(), &["--help"], &[]);
    assert!(top.status.success());
    let text = String::from_utf8_lossy(&top.stdout);
    for word in ["serve", "migrate", "--config", "--data-dir", "--database-url", "LANDFALL_"] {
        assert!(text.contains(word), "landfall --help lacks {word}:\n{text}");
    }
    let serve = run(dir.path(), &["serve", "--help"], &[]);
    let text = String::from_utf8_lossy(&serve.stdout);
    for word in [
        "--listen",
        "127.0.0.1:3000",
        "--data-dir",
        "--database-url",
        "--log-level",
        "--log-format",
        "--site-root",
        "--config",
    ] {
        assert!(text.contains(word), "landfall serve --help lacks {word}:\n{text}");
    }
}
