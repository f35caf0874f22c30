//! Where in the script a hook call was when Rhai's own limits stopped it.
//!
//! Rhai reports its limits (operations, sizes, call depth) with no position, or with the
//! position of the function call around them, so an error would name the hook's `fn` line. A
//! debugger callback keeps the position of the statement or expression being run on this
//! thread, and the error takes it.

use std::cell::Cell;

use rhai::{Engine, Position};

std::thread_local! {
    /// The script position this thread evaluated last.
    static AT: Cell<Position> = const { Cell::new(Position::NONE) };
}

/// Forgets the position of the call before, for the hook call about to run on this thread.
pub fn enter() {
    AT.set(Position::NONE);
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
            Ok(rhai::debugger::DebuggerCommand::StepInto)
        },
    );
}
