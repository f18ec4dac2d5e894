//! `gridlease shell`: an interactive session in a replica over the provider's mutual-TLS
//! channel. On a terminal the local one is put in raw mode, so every key (Ctrl-C included)
//! reaches the remote terminal, and its size follows the window (SIGWINCH); elsewhere input
//! is passed through as it comes and the end of input is passed on.

use std::io::{IsTerminal, Write};

use gridlease_provider::api::{ShellFrame, ShellOpen};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::context::failed;

/// The local terminal in raw mode until dropped.
struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        use rustix::termios::{OptionalActions, tcgetattr, tcsetattr};
        let stdin = rustix::stdio::stdin();
        let saved = tcgetattr(stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(stdin, OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let stdin = rustix::stdio::stdin();
        let _ =
            rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &self.saved);
    }
}

/// The local terminal's size (columns, rows), or none.
fn window_size() -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(rustix::stdio::stdout()).ok()?;
    (ws.ws_col > 0).then_some((ws.ws_col, ws.ws_row))
}

/// What to ask the provider for: a terminal of this window's size when both ends of this
/// process are one, plain pipes otherwise.
pub fn open_request(service: String, replica: u32, command: Vec<String>) -> ShellOpen {
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let (cols, rows) = if tty { window_size().unwrap_or((80, 24)) } else { (0, 0) };
    ShellOpen { service, replica, command, tty, cols, rows }
}

/// Runs the session opened as `open` asked, on its upgraded connection `stream`, to its end;
/// returns the program's exit code.
pub async fn run(
    stream: impl AsyncRead + AsyncWrite + Send + 'static,
    open: &ShellOpen,
) -> anyhow::Result<i64> {
    let tty = open.tty;
    let (mut from_provider, mut to_provider) = tokio::io::split(stream);
    let _raw = if tty { RawMode::enter() } else { None };

    // Keystrokes (read on a thread: stdin blocks) and window changes, as frames.
    let (frames, mut outgoing) = tokio::sync::mpsc::channel::<ShellFrame>(64);
    let keys = frames.clone();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = keys.blocking_send(ShellFrame::EndOfInput);
                    break;
                }
                Ok(n) => {
                    if keys.blocking_send(ShellFrame::Input(buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    if tty {
        let resizes = frames.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut winch) = signal(SignalKind::window_change()) else { return };
            while winch.recv().await.is_some() {
                if let Some((cols, rows)) = window_size()
                    && resizes.send(ShellFrame::Resize { cols, rows }).await.is_err()
                {
                    break;
                }
            }
        });
    }
    drop(frames);
    let sender = tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            if to_provider.write_all(&frame.encode()).await.is_err() {
                break;
            }
        }
    });
    let mut stdout = std::io::stdout();
    let result = loop {
        match ShellFrame::read(&mut from_provider).await {
            Ok(Some(ShellFrame::Output(bytes))) => {
                let _ = stdout.write_all(&bytes);
                let _ = stdout.flush();
            }
            Ok(Some(ShellFrame::Exit(code))) => break Ok(code),
            Ok(Some(ShellFrame::Error(e))) => {
                break Err(failed(format!("the session failed: {e}")));
            }
            Ok(Some(_)) => break Err(failed("the provider sent a frame only a client sends")),
            Ok(None) => break Err(failed("the provider closed the session without an exit code")),
            Err(e) => break Err(failed(format!("the session broke: {e}"))),
        }
    };
    sender.abort();
    result
}
