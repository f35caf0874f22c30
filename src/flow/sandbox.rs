//! Where in the script a hook call is, and how much CPU time it has left.
//!
//! Rhai reports its limits (operations, sizes, call depth) with no position, or with the
//! position of the function call around them, so an error would name the hook's `fn` line. A
//! debugger callback keeps the position of the statement or expression being run on this
//! thread, and the error takes it.
//!
//! The same callback holds a hook call to [`MAX_HOOK_CPU`] of
//! this thread's CPU time: the operation limit counts statements, but one statement can scan
//! a 64 KiB string or sort 10 000 items, so counting alone let one hook take seconds. CPU
//! time, not wall time, so a busy machine descheduling the thread fails no hook.

use std::cell::Cell;
use std::time::Duration;

use rhai::{Dynamic, Engine, EvalAltResult, Position};

use super::limits::MAX_HOOK_CPU;

/// Steps between two reads of the thread's CPU clock (a read costs ~50 ns, a step ~20).
const STEPS_PER_CLOCK_READ: u32 = 256;

/// What [`EvalAltResult::ErrorTerminated`] carries when the CPU limit stopped the hook.
pub const CPU_LIMIT_TOKEN: &str = "smsflow: hook cpu limit";

std::thread_local! {
    /// The script position this thread evaluated last.
    static AT: Cell<Position> = const { Cell::new(Position::NONE) };
    /// The thread CPU time the running hook call must end by (`None`: no hook running, as
    /// in a script test's own body).
    static DEADLINE: Cell<Option<Duration>> = const { Cell::new(None) };
    static STEPS: Cell<u32> = const { Cell::new(0) };
}

/// Starts a hook call on this thread: forgets the position of the call before and gives it
/// [`MAX_HOOK_CPU`] from now. Returns the deadline of the call around it, for [`leave`].
pub fn enter() -> Option<Duration> {
    AT.set(Position::NONE);
    STEPS.set(0);
    DEADLINE.replace(Some(thread_cpu() + MAX_HOOK_CPU))
}

/// Ends a hook call: the call around it (if any) has its deadline back.
pub fn leave(outer: Option<Duration>) {
    DEADLINE.set(outer);
}

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Whether the running hook call is past its CPU time, checked every
/// [`STEPS_PER_CLOCK_READ`] steps.
fn over_time() -> bool {
    let steps = STEPS.get().wrapping_add(1);
    STEPS.set(steps);
    if !steps.is_multiple_of(STEPS_PER_CLOCK_READ) {
        return false;
    }
    DEADLINE
        .get()
        .is_some_and(|deadline| thread_cpu() > deadline)
}

/// Where the script was when a limit stopped it: the last statement or expression this
/// thread evaluated.
pub fn position() -> Position {
    AT.get()
}

/// Installs the position-keeping debugger on `engine`.
pub fn install(engine: &mut Engine) {
    // A debugger that steps into everything and only notes where it is. It costs about a
    // quarter of an operation's time.
    #[allow(deprecated)] // "volatile", not deprecated
    engine.register_debugger(
        |_, debugger| debugger,
        |_, event, _, _, pos| {
            use rhai::debugger::DebuggerEvent::{Start, Step};
            if matches!(event, Start | Step) && !pos.is_none() {
                AT.set(pos);
            }
            if over_time() {
                return Err(Box::new(EvalAltResult::ErrorTerminated(
                    Dynamic::from(CPU_LIMIT_TOKEN),
                    pos,
                )));
            }
            Ok(rhai::debugger::DebuggerCommand::StepInto)
        },
    );
}
