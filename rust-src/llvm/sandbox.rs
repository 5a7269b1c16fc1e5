//! Reading untrusted bitcode without risking the process. LLVM's bitcode reader is not
//! hardened against corrupt input: single flipped bits in a valid module make it
//! dereference wild pointers (SIGSEGV), ask for absurd allocations ("LLVM ERROR: out of
//! memory", then `abort()`), or throw C++ exceptions nothing catches — and inside Julia
//! any of these ends the user's session. No structural pre-check can rule that out.
//!
//! So before the reader sees bytes in this process, `check` reads them in a child:
//! `fork()`, then the child parses them with LLVM 19 into a fresh context, runs the
//! verifier (the engine's passes assume valid IR), writes a one-byte verdict and a
//! message into a pipe and `_exit`s. The parent waits with a timeout and kills the child
//! when it runs out. Only when the child read and verified the bytes does the parent
//! parse them itself; the reader is deterministic, so the same bytes cannot fault there.
//! A child that dies by a signal, hits an LLVM fatal error or runs out of memory means
//! bytes that would have done the same here: the compile fails with `BadIr`.
//!
//! Forking a multi-threaded process (Julia is one) is allowed, but only the forking
//! thread exists in the child, and locks other threads held at the fork stay held
//! there. glibc re-initialises malloc's locks in the child, and the engine serialises
//! its own LLVM work, so the child normally finds LLVM's few global locks free; if it
//! does not, it deadlocks, the timeout kills it, and the check is tried once more
//! before the compile fails. The child resets the fatal signals to their default
//! actions (Julia's handlers must not run in it: they assume a Julia thread), sends its
//! stderr to /dev/null, caps its address space (a runaway allocation cannot push the
//! machine into swap or wake the OOM killer, which might pick the parent), arms an
//! `alarm` in case the parent dies, and never returns into Rust or Julia code of the
//! parent: it leaves by `_exit`, so no `atexit` hook of Julia's runs.
//!
//! Cost: one fork (copying the parent's page tables: proportional to its resident
//! memory) plus one extra parse and verification of the module, per compile that
//! misses the cache (figures in docs/how-it-works.md). `OXIDASE_UNCHECKED_BITCODE=1`
//! skips the check, and with it the guarantee.

use std::ffi::c_int;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// In the child: the pipe's write end. -1 in any other process.
static CHILD_FD: AtomicI32 = AtomicI32::new(-1);

/// The child's verdicts (the first byte it writes).
const READ_OK: u8 = b'O';
const PARSE_FAILED: u8 = b'P';
const VERIFY_FAILED: u8 = b'V';
const FATAL: u8 = b'F';

/// Longest message the child sends back.
const MESSAGE_CAP: usize = 4096;

/// Why bytes were not handed to LLVM's reader in this process.
#[derive(Debug)]
pub enum Refusal {
    /// The bytes are not a valid module (the message says how it failed).
    Bad(String),
    /// The check could not run (no fork, no pipe); nothing is known about the bytes.
    Unavailable(String),
}

/// What the test hooks make the child do instead of its work (`OXIDASE_INJECT_CHECK`):
/// `segv`, `abort`, `fatal`, `oom`, `hang`, `panic`. Read in the parent.
#[derive(Clone, Copy, PartialEq)]
enum Inject {
    None,
    Segv,
    Abort,
    Fatal,
    Oom,
    Hang,
    Panic,
}

fn inject_from_env() -> Inject {
    match std::env::var("OXIDASE_INJECT_CHECK").as_deref() {
        Ok("segv") => Inject::Segv,
        Ok("abort") => Inject::Abort,
        Ok("fatal") => Inject::Fatal,
        Ok("oom") => Inject::Oom,
        Ok("hang") => Inject::Hang,
        Ok("panic") => Inject::Panic,
        _ => Inject::None,
    }
}

/// Whether the check is skipped (`OXIDASE_UNCHECKED_BITCODE=1`).
pub fn disabled() -> bool {
    std::env::var_os("OXIDASE_UNCHECKED_BITCODE").is_some_and(|v| v == "1")
}

/// How long the child may take: 10 s, plus 1 s per MB of bitcode (parsing runs at tens
/// of MB/s; the margin is for a loaded machine). `OXIDASE_CHECK_TIMEOUT_MS` overrides.
fn timeout(len: usize) -> Duration {
    std::env::var("OXIDASE_CHECK_TIMEOUT_MS")
        .ok()
        .and_then(|t| t.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or_else(|| Duration::from_secs(10 + (len >> 20) as u64))
}

/// Reads and verifies `bytes` in a child process; `Ok` when LLVM 19 reads them without
/// error, fault or fatal error and the module verifies.
pub fn check(bytes: &[u8]) -> Result<(), Refusal> {
    super::fatal::install();
    crate::isolate::on_panic_in_child(child_exit_on_fatal);
    let inject = inject_from_env();
    let limit = timeout(bytes.len());
    match check_once(bytes, inject, limit)? {
        Some(verdict) => verdict,
        // A deadlock on a lock another thread held at the fork is possible (if
        // improbable); a second fork finds other threads elsewhere.
        None => match check_once(bytes, inject, limit)? {
            Some(verdict) => verdict,
            None => Err(Refusal::Bad(format!(
                "LLVM's bitcode reader did not finish within {} ms, twice (the bitcode is \
                 likely malformed; if it is not, set OXIDASE_CHECK_TIMEOUT_MS higher)",
                limit.as_millis()
            ))),
        },
    }
}

/// One child; `None` when it timed out.
#[allow(clippy::type_complexity)]
fn check_once(bytes: &[u8], inject: Inject, limit: Duration) -> Result<Option<Result<(), Refusal>>, Refusal> {
    // Everything the child needs is computed here: after the fork only the reading
    // itself allocates.
    let address_space = address_space_budget(bytes.len());
    let alarm_secs = limit.as_secs() as u32 + 2;
    let mut fds = [0 as c_int; 2];
    // SAFETY: `pipe2`, `fork`, `close`, `fcntl` are system calls on locals and the
    // descriptors just opened, each closed once. After `fork` in this multithreaded
    // process the child runs only `child` and `report`, which end in `_exit`: what they
    // call besides system calls (LLVM's reader, allocation) must not wait on a lock
    // another parent thread held at the fork: glibc resets `malloc`'s locks in the
    // child, and that LLVM's reader takes no lock an LLVM call on another thread may
    // hold is assumed, not checked (the child's alarm ends it if it hangs). Everything
    // else the child needs is computed before the fork.
    // `wait` is given the child's pid and the read end it owns.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(Refusal::Unavailable(format!("pipe: {}", std::io::Error::last_os_error())));
        }
        let [rd, wr] = fds;
        let pid = libc::fork();
        if pid < 0 {
            let e = std::io::Error::last_os_error();
            libc::close(rd);
            libc::close(wr);
            return Err(Refusal::Unavailable(format!("fork: {e}")));
        }
        if pid == 0 {
            libc::close(rd);
            // A panic must not unwind out of here: the child would go on as a copy of
            // the parent. (Inside Julia the panic hook of `isolate` reports it first.)
            let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                child(bytes, wr, address_space, alarm_secs, inject)
            }))
            .unwrap_err();
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            report(FATAL, format!("the check panicked: {what}").as_bytes());
        }
        libc::close(wr);
        libc::fcntl(rd, libc::F_SETFL, libc::fcntl(rd, libc::F_GETFL) | libc::O_NONBLOCK);
        let outcome = wait(pid, rd, Instant::now() + limit);
        libc::close(rd);
        Ok(outcome.map(|(status, report)| verdict(status, &report)))
    }
}

/// Collects the child's report and its exit status; `None` (after killing it) when it
/// runs past `deadline`.
unsafe fn wait(pid: libc::pid_t, rd: c_int, deadline: Instant) -> Option<(Option<c_int>, Vec<u8>)> {
    let mut report = Vec::new();
    let mut eof = false;
    let mut buf = [0u8; 4096];
    loop {
        if !eof {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut p = libc::pollfd { fd: rd, events: libc::POLLIN, revents: 0 };
            libc::poll(&mut p, 1, left.as_millis().clamp(1, 10) as c_int);
            loop {
                let n = libc::read(rd, buf.as_mut_ptr().cast(), buf.len());
                if n > 0 {
                    if report.len() < 2 * MESSAGE_CAP {
                        report.extend_from_slice(&buf[..n as usize]);
                    }
                    continue;
                }
                let err = std::io::Error::last_os_error().raw_os_error();
                if n < 0 && err == Some(libc::EINTR) {
                    continue;
                }
                // EOF: the child exited (it closes its end no other way); or a read
                // error, after which the exit status decides.
                eof = n == 0 || err != Some(libc::EAGAIN);
                break;
            }
        }
        let mut status = 0;
        // After EOF the child is gone or going: wait for it.
        let flags = if eof { 0 } else { libc::WNOHANG };
        match libc::waitpid(pid, &mut status, flags) {
            p if p == pid => return Some((Some(status), report)),
            // Someone reaped it (a SIGCHLD set to be ignored): the report decides.
            -1 if std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) => return Some((None, report)),
            _ => {}
        }
        if Instant::now() >= deadline {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, &mut status, 0);
            return None;
        }
        if eof {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The parent's reading of the child's exit status and report.
fn verdict(status: Option<c_int>, report: &[u8]) -> Result<(), Refusal> {
    let message = || String::from_utf8_lossy(report.get(1..).unwrap_or_default()).into_owned();
    if let Some(s) = status {
        if libc::WIFSIGNALED(s) {
            let sig = libc::WTERMSIG(s);
            return Err(Refusal::Bad(format!(
                "LLVM's bitcode reader crashed on it ({}; read in a separate process, so \
                 nothing else was affected)",
                signal_name(sig)
            )));
        }
    }
    match report.first() {
        Some(&READ_OK) => Ok(()),
        Some(&PARSE_FAILED) => Err(Refusal::Bad(message())),
        Some(&VERIFY_FAILED) => Err(Refusal::Bad(format!("the module does not verify: {}", message()))),
        Some(&FATAL) => Err(Refusal::Bad(format!("reading it stopped LLVM: {}", message()))),
        _ => Err(Refusal::Bad(format!(
            "the process reading it ended without a verdict (exit status {})",
            status.map_or("unknown".into(), |s| s.to_string())
        ))),
    }
}

fn signal_name(sig: c_int) -> String {
    let name = match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTRAP => "SIGTRAP",
        _ => return format!("signal {sig}"),
    };
    format!("signal {sig}, {name}")
}

/// The child's address-space cap: what the parent maps now plus 1 GiB plus 64 bytes per
/// byte of bitcode (a module in memory is some ten times its bitcode). `None` when
/// /proc is not readable.
fn address_space_budget(len: usize) -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Some(pages * page + (1 << 30) + 64 * len as u64)
}

/// In the child: end it with the verdict `tag` and `msg` (truncated).
unsafe fn report(tag: u8, msg: &[u8]) -> ! {
    let fd = CHILD_FD.load(Ordering::Relaxed);
    let mut out = Vec::with_capacity(1 + MESSAGE_CAP);
    out.push(tag);
    out.extend_from_slice(&msg[..msg.len().min(MESSAGE_CAP)]);
    let mut at = 0;
    while at < out.len() {
        let n = libc::write(fd, out[at..].as_ptr().cast(), out.len() - at);
        if n <= 0 {
            break;
        }
        at += n as usize;
    }
    libc::_exit(0)
}

/// Called by the fatal-error and panic handlers: in the child, report and exit (never
/// returns); elsewhere, nothing.
pub(crate) fn child_exit_on_fatal(msg: &str) {
    if CHILD_FD.load(Ordering::Relaxed) >= 0 {
        // SAFETY: in the child, where the pipe is open.
        unsafe { report(FATAL, msg.as_bytes()) }
    }
}

/// The child: read, verify, report, `_exit`. Never returns.
unsafe fn child(bytes: &[u8], wr: c_int, address_space: Option<u64>, alarm_secs: u32, inject: Inject) -> ! {
    CHILD_FD.store(wr, Ordering::Relaxed);
    // Close every other descriptor: a check forked at the same time by another thread
    // holds a copy of our parent's pipe otherwise, and delays the EOF it waits for.
    libc::syscall(libc::SYS_close_range, 3u32, (wr - 1) as u32, 0u32);
    libc::syscall(libc::SYS_close_range, (wr + 1) as u32, u32::MAX, 0u32);
    // Default actions for the signals a fault raises (Julia's handlers assume a Julia
    // thread), unblocked; SIGALRM ends a child whose parent is gone.
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    for sig in [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGABRT,
        libc::SIGTRAP,
        libc::SIGSYS,
        libc::SIGALRM,
    ] {
        libc::signal(sig, libc::SIG_DFL);
        libc::sigaddset(&mut set, sig);
    }
    libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    libc::alarm(alarm_secs);
    if let Some(cap) = address_space {
        let lim = libc::rlimit { rlim_cur: cap, rlim_max: cap };
        libc::setrlimit(libc::RLIMIT_AS, &lim);
    }
    // What LLVM or the C++ runtime print before dying is noise; the parent reports.
    let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
    if null >= 0 {
        libc::dup2(null, 2);
    }
    match inject {
        Inject::None => {}
        Inject::Segv => {
            libc::raise(libc::SIGSEGV);
        }
        Inject::Abort => libc::abort(),
        Inject::Fatal => super::fatal::inject(c"injected fatal error"),
        Inject::Oom => {
            // What LLVM's allocation wrappers (`safe_malloc`, `SmallVector` growth) call
            // when malloc fails.
            extern "C" {
                #[link_name = "_ZN4llvm22report_bad_alloc_errorEPKcb"]
                fn llvm_report_bad_alloc_error(reason: *const libc::c_char, gen_crash_diag: bool);
            }
            llvm_report_bad_alloc_error(c"injected".as_ptr(), false);
        }
        Inject::Hang => loop {
            libc::pause();
        },
        Inject::Panic => panic!("injected panic in the bitcode check"),
    }
    // Never disposed of: the child leaves by `_exit` in `report`.
    let ctx = super::Context::create();
    let parsed = super::owner::parse_bitcode_in(&ctx, bytes);
    match parsed {
        Err(msg) => report(PARSE_FAILED, msg.as_bytes()),
        // The reader drops debug info the verifier rejects, and prints the verifier's
        // report to stderr: in the parent that would be noise on the user's terminal,
        // and Julia never writes such debug info.
        Ok((_, warnings)) if warnings.contains("invalid debug info") => {
            report(PARSE_FAILED, b"the bitcode has invalid debug info")
        }
        Ok((m, _)) => {
            if let Err(msg) = m.verify() {
                report(VERIFY_FAILED, msg.to_bytes())
            }
            report(READ_OK, b"")
        }
    }
}
