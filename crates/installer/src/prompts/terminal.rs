//! The pseudo-terminal an interactive installer gets instead of the
//! caller's own terminal (which is never handed to a root process).
//!
//! The agent keeps the master: a relay thread copies what the installer
//! writes to the stream ([`PromptEvent::TerminalOutput`]) and the update's
//! log, and what the client types into the master. The slave is the
//! installer's stdin, stdout, stderr and controlling terminal (through
//! `setsid --ctty`, see `handlers`). When the stream goes away, or the
//! handler hangs up after an abort, the master is closed: the kernel hangs
//! the installer's terminal up (SIGHUP, then end of file). The relay is
//! line-based and the client echoes locally, so the slave starts without
//! echo (`quiet_echo`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
use openwua_model::prompt::PromptEvent;
use rustix::pty::{OpenptFlags, grantpt, ioctl_tiocgptpeer, openpt, unlockpt};
use rustix::termios::Winsize;

use super::Prompter;

/// How long the relay sleeps in poll before looking at input and flags:
/// the keystroke latency at worst.
const RELAY_TICK: u16 = 30;

/// The size a terminal starts with, until the client sends its own.
const INITIAL_SIZE: Winsize = Winsize {
    ws_row: 24,
    ws_col: 80,
    ws_xpixel: 0,
    ws_ypixel: 0,
};

/// What the client sends the terminal.
#[derive(Debug)]
pub(crate) enum TerminalInput {
    /// Typed bytes.
    Bytes(Vec<u8>),
    /// A new window size.
    Resize { rows: u16, columns: u16 },
}

/// One installer's pseudo-terminal. Dropping it stops the relay (after the
/// output still buffered is read) and closes the master.
pub struct Terminal {
    slave: Option<OwnedFd>,
    stop: Arc<AtomicBool>,
    hang_up: Arc<AtomicBool>,
    relay: Option<JoinHandle<()>>,
    number: u64,
    prompter: Prompter,
}

impl Prompter {
    /// Allocates a pseudo-terminal relayed to this prompter's stream; its
    /// output is also appended to `log`.
    pub fn terminal(&self, log: File) -> io::Result<Terminal> {
        let (master, slave) = open_pty()?;
        quiet_echo(&slave)?;
        // Non-blocking, so a full input buffer (an installer that does not
        // read) never stalls the relay or keeps the master open.
        fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
        let (input, inputs) = mpsc::channel();
        let number = self.attach_terminal(input);
        let stop = Arc::new(AtomicBool::new(false));
        let hang_up = Arc::new(AtomicBool::new(false));
        let relay = Relay {
            master: File::from(master),
            inputs,
            prompter: self.clone(),
            log,
            stop: stop.clone(),
            hang_up: hang_up.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("prompt-terminal".into())
            .spawn(move || relay.run());
        let thread = match thread {
            Ok(thread) => thread,
            Err(error) => {
                self.detach_terminal(number);
                return Err(error);
            }
        };
        Ok(Terminal {
            slave: Some(slave),
            stop,
            hang_up,
            relay: Some(thread),
            number,
            prompter: self.clone(),
        })
    }
}

/// A pseudo-terminal's master and slave, both close-on-exec from the
/// moment they exist: openpty(3) opens them inheritable, and a program
/// another thread starts before they are marked would inherit them (a
/// master kept open elsewhere means the terminal is never hung up). The
/// installer still gets the slave: spawning dup2s it onto 0, 1 and 2,
/// which clears the flag on those copies only.
fn open_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = openpt(flags)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let slave = ioctl_tiocgptpeer(&master, flags)?;
    rustix::termios::tcsetwinsize(&slave, INITIAL_SIZE)?;
    Ok((master, slave))
}

/// Turns the terminal's echo off. The client relays in line mode and its
/// own terminal echoes what the user types; an echo here too would show
/// every line twice. ECHONL would still echo the newline, so it goes too
/// (ECHOE, ECHOK and ECHOCTL act only with ECHO). An installer that wants
/// echo (or no echo, `read -s`) may still set its terminal as it likes.
fn quiet_echo(slave: &OwnedFd) -> io::Result<()> {
    let mut modes = tcgetattr(slave).map_err(io::Error::from)?;
    modes
        .local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ECHONL);
    tcsetattr(slave, SetArg::TCSANOW, &modes).map_err(io::Error::from)
}

impl Terminal {
    /// The slave three times over, for stdin, stdout and stderr; the
    /// terminal keeps no slave of its own afterwards, so the master sees
    /// the end once the installer and its children have closed theirs.
    pub(crate) fn take_stdio(&mut self) -> io::Result<[OwnedFd; 3]> {
        let slave = self
            .slave
            .take()
            .ok_or_else(|| io::Error::other("the terminal's slave was taken already"))?;
        let (stdout, stderr) = (slave.try_clone()?, slave.try_clone()?);
        Ok([slave, stdout, stderr])
    }

    /// Closes the master now: the installer's terminal is hung up.
    pub(crate) fn hang_up(&self) {
        self.hang_up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.slave = None;
        self.stop.store(true, Ordering::SeqCst);
        if let Some(relay) = self.relay.take() {
            let _ = relay.join();
        }
        self.prompter.detach_terminal(self.number);
    }
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

struct Relay {
    master: File,
    inputs: mpsc::Receiver<TerminalInput>,
    prompter: Prompter,
    log: File,
    stop: Arc<AtomicBool>,
    hang_up: Arc<AtomicBool>,
}

impl Relay {
    fn run(mut self) {
        let mut typed: Vec<u8> = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            while let Ok(input) = self.inputs.try_recv() {
                match input {
                    TerminalInput::Bytes(bytes) => typed.extend_from_slice(&bytes),
                    TerminalInput::Resize { rows, columns } => {
                        // A size the kernel refuses changes nothing.
                        let _ = rustix::termios::tcsetwinsize(
                            &self.master,
                            rustix::termios::Winsize {
                                ws_row: rows,
                                ws_col: columns,
                                ws_xpixel: 0,
                                ws_ypixel: 0,
                            },
                        );
                    }
                }
            }
            if self.prompter.is_gone() || self.hang_up.load(Ordering::SeqCst) {
                break;
            }
            let stopping = self.stop.load(Ordering::SeqCst);
            let mut flags = PollFlags::POLLIN;
            if !typed.is_empty() {
                flags |= PollFlags::POLLOUT;
            }
            let timeout = if stopping { 0u16 } else { RELAY_TICK };
            let mut fds = [PollFd::new(self.master.as_fd(), flags)];
            let ready = match poll(&mut fds, PollTimeout::from(timeout)) {
                Ok(ready) => ready,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            };
            let revents = fds[0].revents().unwrap_or(PollFlags::empty());
            if ready == 0 {
                if stopping {
                    break;
                }
                continue;
            }
            if revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                match self.master.read(&mut buffer) {
                    // EIO: every slave is closed; the installer is done.
                    Ok(0) => break,
                    Err(error) if error.raw_os_error() == Some(nix::libc::EIO) => break,
                    Ok(count) => {
                        let output = &buffer[..count];
                        let _ = self.log.write_all(output);
                        self.prompter
                            .emit(PromptEvent::TerminalOutput(output.to_vec()));
                    }
                    Err(error)
                        if matches!(
                            error.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    Err(_) => break,
                }
            }
            if revents.contains(PollFlags::POLLOUT) {
                match self.master.write(&typed) {
                    Ok(count) => {
                        typed.drain(..count);
                    }
                    Err(error)
                        if matches!(
                            error.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    Err(_) => typed.clear(),
                }
            }
        }
        self.prompter.emit(PromptEvent::TerminalClosed);
        // Dropping `self.master` here closes it: the slave is hung up.
    }
}
