//! Standard output that ends quietly when its reader goes away.
//!
//! `println!` panics when stdout is a closed pipe (`qr-packer inspect … |
//! head`). Every line the tool prints goes through [`say!`] instead: a
//! broken pipe ends the process with status 0, as `cat` or `grep` would,
//! and any other write error is reported once on stderr.

use std::io::Write;

/// Writes `args` to stdout; exits quietly if nobody reads it any more.
pub fn emit(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(2);
    }
}

/// `println!` through [`emit`].
macro_rules! say {
    () => { $crate::stdout::emit(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::stdout::emit(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` through [`emit`].
macro_rules! say_raw {
    ($($arg:tt)*) => { $crate::stdout::emit(format_args!($($arg)*)) };
}

pub(crate) use {say, say_raw};
