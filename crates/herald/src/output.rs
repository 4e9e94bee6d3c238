//! The CLI's standard output. A reader that stops early (`herald execution list | head -3`)
//! closes the pipe; `println!` would then panic with "failed printing to stdout" and exit 101.
//! Output goes through [`write`] instead, which ends the process quietly and successfully on a
//! closed pipe, as other command-line tools do, and with a message on any other failure.

use std::io::Write as _;

/// Writes to standard output; see the module's doc for what a failure does.
pub fn write(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing the output: {e}");
        std::process::exit(1);
    }
}

/// `println!` through [`write`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through [`write`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))
    };
}
