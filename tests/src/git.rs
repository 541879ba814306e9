//! Real Git repositories for tests, made with the `git` command line.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs git in `dir` with a fixed identity and clock, failing the test on error.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Alice Example")
        .env("GIT_AUTHOR_EMAIL", "alice@example.com")
        .env("GIT_COMMITTER_NAME", "Bob Example")
        .env("GIT_COMMITTER_EMAIL", "bob@example.com")
        .env("GIT_AUTHOR_DATE", "2024-01-02T10:00:00+0130")
        .env("GIT_COMMITTER_DATE", "2024-01-02T11:00:00+0130")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

pub fn commit(dir: &Path, file: &str, message: &[u8]) -> String {
    std::fs::write(dir.join(file), format!("{}\n", message.len())).unwrap();
    git(dir, &["add", file]);
    std::fs::write(dir.join(".message"), message).unwrap();
    git(dir, &["commit", "--quiet", "--cleanup=verbatim", "-F", ".message"]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A commit whose message is Latin-1 bytes with no encoding header: `git commit` would
/// repair it, so the object is written directly, as old tools and imports do.
pub fn commit_raw(dir: &Path, message: &[u8]) -> String {
    let tree = git(dir, &["rev-parse", "HEAD^{tree}"]);
    let parent = git(dir, &["rev-parse", "HEAD"]);
    let mut object = format!(
        "tree {tree}\nparent {parent}\nauthor Alice Example <alice@example.com> 1704189600 +0130\n\
         committer Bob Example <bob@example.com> 1704189600 +0130\n\n"
    )
    .into_bytes();
    object.extend_from_slice(message);
    let file = dir.join(".object");
    std::fs::write(&file, object).unwrap();
    let sha = git(dir, &["hash-object", "-t", "commit", "-w", "--literally", ".object"]);
    git(dir, &["update-ref", "refs/heads/main", &sha]);
    sha
}

/// main: SHOP-1 → (branch SHOP-2, merged as PR #12) → squash of PR #13 (SHOP-3).
pub fn make_history(dir: &Path) -> String {
    git(dir, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(dir.join(".gitignore"), ".message\n.object\n").unwrap();
    git(dir, &["add", ".gitignore"]);
    commit(dir, "cart.txt", b"SHOP-1: add the cart\n\nUses UTF-8 and SHA-256, which are not features.\n");
    git(dir, &["checkout", "--quiet", "-b", "SHOP-2-checkout"]);
    commit(dir, "checkout.txt", b"Checkout form for SHOP-2\n");
    git(dir, &["checkout", "--quiet", "main"]);
    git(
        dir,
        &["merge", "--quiet", "--no-ff", "-m", "Merge pull request #12 from acme/SHOP-2-checkout", "SHOP-2-checkout"],
    );
    commit(dir, "totals.txt", b"Show totals (#13)\n\n* SHOP-3 totals\n");
    commit_raw(dir, b"Caf\xe9 cr\xe8me for PAY-7\n");
    let big = format!("Huge message for SHOP-4\n\n{}\n", "x".repeat(1024 * 1024));
    commit(dir, "big.txt", big.as_bytes())
}

/// Writes a history of about `commits` commits to the bare repository at `path` with
/// `git fast-import`: a main line where every tenth commit merges a two-commit branch
/// (GitHub's merge subject), and the rest are squash merges `Subject (#N)` naming a key.
pub fn generate_history(path: &Path, commits: usize) {
    let status = Command::new("git").args(["init", "--quiet", "--bare", "--initial-branch=main"]).arg(path).status();
    assert!(status.unwrap().success());
    let mut child = Command::new("git")
        .arg("-C")
        .arg(path)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import");
    let mut stdin = std::io::BufWriter::new(child.stdin.take().unwrap());
    let mut mark = 0;
    let mut main_tip = 0;
    let mut pull_request = 0;
    let time = 1_600_000_000;
    let write = |stdin: &mut std::io::BufWriter<_>, branch: &str, message: String, parents: &[usize], mark: usize| {
        let author = mark % 37;
        writeln!(stdin, "commit refs/heads/{branch}\nmark :{mark}").unwrap();
        writeln!(stdin, "author Dev {author} <dev{author}@example.com> {} +0100", time + mark).unwrap();
        writeln!(stdin, "committer Dev {author} <dev{author}@example.com> {} +0100", time + mark).unwrap();
        writeln!(stdin, "data {}\n{message}", message.len()).unwrap();
        if let Some(first) = parents.first() {
            writeln!(stdin, "from :{first}").unwrap();
        }
        for parent in parents.iter().skip(1) {
            writeln!(stdin, "merge :{parent}").unwrap();
        }
        writeln!(stdin, "M 644 inline f{}.txt\ndata {}\n{mark}\n", mark % 100, mark.to_string().len() + 1).unwrap();
    };
    while mark < commits {
        let key = mark / 3 % 50_000 + 1;
        pull_request += 1;
        let parents: Vec<usize> = if main_tip == 0 { vec![] } else { vec![main_tip] };
        if pull_request % 10 == 0 && main_tip != 0 {
            mark += 1;
            write(&mut stdin, "topic", format!("SHOP-{key}: first step\n"), &[main_tip], mark);
            mark += 1;
            write(&mut stdin, "topic", format!("SHOP-{key}: second step\n\nMore detail.\n"), &[mark - 1], mark);
            mark += 1;
            let subject = format!("Merge pull request #{pull_request} from acme/SHOP-{key}-work\n\nSHOP-{key}\n");
            write(&mut stdin, "main", subject, &[main_tip, mark - 1], mark);
        } else {
            mark += 1;
            let message = format!("Change number {mark} (#{pull_request})\n\n* SHOP-{key} part of it\n");
            write(&mut stdin, "main", message, &parents, mark);
        }
        main_tip = mark;
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let status = Command::new("git").arg("-C").arg(path).args(["update-ref", "-d", "refs/heads/topic"]).status();
    assert!(status.unwrap().success());
}
