//! `forge run -it` and `forge exec -it` driven through a real pty pair, as a user's terminal
//! would drive them: the container's own terminal, the window size, Ctrl-C, the exit code, and
//! the outer terminal's settings restored afterwards.

mod common;

use common::pty::{set_window_size, Terminal, PROMPT, TIMEOUT};
use common::{children_named, eventually, Forge};

/// Types `sleep 100` at the prompt, then Ctrl-C: the sleep (a child of the shell `shell`
/// finds) dies, and the shell prints a new prompt and reports it interrupted.
fn interrupt_sleep(term: &mut Terminal, shell: impl Fn() -> Option<i64>) {
    term.line("sleep 100");
    let sleep = eventually(TIMEOUT, "sleep to start in the shell", || {
        children_named(shell()?, "sleep").pop()
    });
    // The shell hands the terminal to the job only around its fork and exec: a Ctrl-C before
    // that reaches the shell, which shrugs it off, and the sleep then runs its 100 s.
    eventually(TIMEOUT, "sleep to be the terminal's foreground job", || {
        common::in_foreground(sleep).then_some(())
    });
    term.send(&[0x03]);
    term.expect(PROMPT);
    term.line("echo status=$?");
    term.expect("status=130");
    assert!(
        !common::process_alive(sleep),
        "sleep (host pid {sleep}) survived Ctrl-C"
    );
}

#[test]
fn container_terminal_is_dev_pts_0() {
    let forge = Forge::new();
    let mut term = Terminal::shell(&forge, 24, 80);
    term.line("tty");
    term.expect("/dev/pts/0");
    term.line("exit");
    assert_eq!(term.finish(), 0);
}

#[test]
fn shell_gets_job_control() {
    let forge = Forge::new();
    let mut term = Terminal::shell(&forge, 24, 80);
    term.line("echo done-$((6*7))");
    term.expect("done-42");
    term.line("exit");
    term.finish();
    assert!(
        !term.seen.contains("job control turned off"),
        "the shell has no job control:\n{}",
        term.seen
    );
}

#[test]
fn window_size_is_the_outer_terminals() {
    let forge = Forge::new();
    let mut term = Terminal::shell(&forge, 40, 100);
    term.line("stty size");
    term.expect("40 100");
    term.line("exit");
    assert_eq!(term.finish(), 0);
}

#[test]
fn window_resize_is_forwarded() {
    let forge = Forge::new();
    let mut term = Terminal::shell(&forge, 40, 100);
    set_window_size(&term.master, 50, 120);
    term.line("stty size");
    term.expect("50 120");
    term.line("exit");
    assert_eq!(term.finish(), 0);
}

#[test]
fn ctrl_c_interrupts_the_foreground_process_and_the_shell_survives() {
    let forge = Forge::new();
    let mut term = Terminal::shell(&forge, 24, 80);
    let shell = forge.running_pid("tty");
    interrupt_sleep(&mut term, || Some(shell));
    term.line("exit");
    assert_eq!(term.finish(), 0);
}

#[test]
fn exit_code_comes_through_the_terminal() {
    let forge = Forge::new();
    let mut term = Terminal::shell(&forge, 24, 80);
    term.line("exit 3");
    assert_eq!(term.finish(), 3);
}

#[test]
fn outer_terminal_settings_are_restored() {
    let forge = Forge::new();
    let pty = Terminal::open(24, 80);
    let before = pty.2.clone();
    let mut term = Terminal::start_on(pty, &forge, &["run", "-it", "--name", "tty", "host", "sh"]);
    term.expect(PROMPT);
    assert_ne!(
        term.termios(),
        before,
        "forge did not put the outer terminal in raw mode"
    );
    term.line("exit 0");
    assert_eq!(term.finish(), 0);
    assert_eq!(
        term.termios(),
        before,
        "the outer terminal's settings were not restored"
    );
}

/// The text after `prefix` in `seen` up to the end of its line, e.g. the number of /dev/pts/N.
fn rest_of_line<'a>(seen: &'a str, prefix: &str) -> Option<&'a str> {
    let at = seen.find(prefix)? + prefix.len();
    seen[at..].lines().next().map(str::trim_end)
}

#[test]
fn exec_shell_has_its_own_terminal_size_and_exit_code() {
    let forge = Forge::new();
    let pty = Terminal::open(30, 90);
    let before = pty.2.clone();
    forge.ok(&["run", "-d", "--name", "box", "host", "sleep", "1000"]);
    let mut term = Terminal::start_on(pty, &forge, &["exec", "-it", "box", "sh"]);
    term.expect(PROMPT);
    term.line("tty; echo TERM=$TERM");
    term.expect("TERM=xterm");
    // The container was started without a terminal, so the exec's pty is the first of the
    // container's devpts; `tty` names it only if the device it finds there is stdin itself.
    assert_eq!(
        rest_of_line(&term.seen, "/dev/pts/"),
        Some("0"),
        "tty did not print a pts of the container's:\n{}",
        term.seen
    );
    term.line("stty size");
    term.expect("30 90");
    set_window_size(&term.master, 35, 95);
    term.line("stty size");
    term.expect("35 95");
    term.line("exit 3");
    assert_eq!(term.finish(), 3);
    assert!(
        !term.seen.contains("job control turned off") && !term.seen.contains("can't access tty"),
        "the exec'ed shell has no job control:\n{}",
        term.seen
    );
    assert_eq!(
        term.termios(),
        before,
        "the outer terminal's settings were not restored"
    );
}

#[test]
fn exec_ctrl_c_interrupts_the_foreground_process_and_the_shell_survives() {
    let forge = Forge::new();
    let mut term = Terminal::exec_shell(&forge, 24, 80);
    let cli = i64::from(term.child.id());
    // forge exec → the joining process (forge-exec) → the shell it forked and executed.
    interrupt_sleep(&mut term, || {
        let join = children_named(cli, "forge-exec").pop()?;
        children_named(join, "sh").pop()
    });
    term.line("exit");
    assert_eq!(term.finish(), 0);
    assert_eq!(
        forge.status("box"),
        "running",
        "Ctrl-C reached the container"
    );
}

#[test]
fn exec_tty_without_interactive_runs_on_a_pty() {
    let forge = Forge::new();
    forge.ok(&["run", "-d", "--name", "box", "host", "sleep", "1000"]);
    let mut term = Terminal::start_on(
        Terminal::open(24, 80),
        &forge,
        &["exec", "-t", "box", "tty"],
    );
    term.expect("/dev/pts/");
    assert_eq!(term.finish(), 0);
    let without = forge.run(&["exec", "box", "tty"]);
    assert_ne!(without.code, 0, "exec without -t has a terminal: {without}");
}

#[test]
fn exec_tty_works_without_a_terminal_on_forges_side() {
    let forge = Forge::new();
    forge.ok(&["run", "-d", "--name", "box", "host", "sleep", "1000"]);
    let out = forge.run(&["exec", "-t", "box", "sh", "-c", "tty; exit 4"]);
    assert_eq!(out.code, 4, "{out}");
    assert!(out.stdout.contains("/dev/pts/0"), "{out}");
    // A command that cannot be executed says so on the pty, with the shell's exit code.
    let missing = forge.run(&["exec", "-t", "box", "no-such-command"]);
    assert_eq!(missing.code, 127, "{missing}");
    assert!(missing.stdout.contains("no-such-command"), "{missing}");
    let unknown = forge.run(&["exec", "-t", "nobody", "tty"]);
    assert_eq!(unknown.code, 125, "{unknown}");
}

/// `forge ARGS...` (a shell as uid 1000) on a terminal: the user can reopen its own pty.
fn check_terminal_belongs_to_the_user(forge: &Forge, args: &[&str]) {
    let mut term = Terminal::start_on(Terminal::open(24, 80), forge, args);
    term.expect("$ ");
    term.line("id -u; tty; echo hi > $(tty) && echo written");
    term.expect("1000");
    term.expect("/dev/pts/");
    term.expect("written");
    term.line("exit 5");
    assert_eq!(term.finish(), 5);
}

#[test]
fn a_users_terminal_is_its_own_in_run_and_exec() {
    let forge = Forge::new();
    check_terminal_belongs_to_the_user(
        &forge,
        &["run", "-it", "--rm", "--user", "1000:1000", "host", "sh"],
    );
    forge.ok(&[
        "run",
        "-d",
        "--user",
        "1000:1000",
        "--name",
        "box",
        "host",
        "sleep",
        "1000",
    ]);
    check_terminal_belongs_to_the_user(&forge, &["exec", "-it", "box", "sh"]);
}

#[test]
fn a_command_that_asks_first_thing_sees_the_window_size_already() {
    let forge = Forge::new();
    forge.ok(&["run", "-d", "--name", "box", "host", "sleep", "1000"]);
    // `stty size` is the very first thing the command does, before any SIGWINCH could come.
    for args in [
        &["run", "--rm", "-t", "--net", "none", "host", "stty", "size"][..],
        &["exec", "-t", "box", "stty", "size"],
    ] {
        for _ in 0..5 {
            let mut term = Terminal::start_on(Terminal::open(33, 99), &forge, args);
            term.expect("33 99");
            assert_eq!(term.finish(), 0, "{args:?}");
        }
    }
}
