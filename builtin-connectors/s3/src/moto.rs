//! A throw-away S3-compatible server for a test: moto in server mode
//! (`python -m moto.server`) on a free loopback port, stopped when the handle drops.
//!
//! moto lives in a virtualenv outside the repository (`$CULVERT_MOTO_VENV`, else
//! `$HOME/.cache/culvert-moto`), created with `pip install 'moto[server]==VERSION'` the
//! first time a test needs it (under a file lock, so parallel tests create it once).
//! `scripts/install-deps.sh` installs what that needs (python3 with venv).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The moto release the tests run against.
pub const MOTO_VERSION: &str = "5.2.5";

/// A running moto server.
pub struct Moto {
    child: Child,
    /// Its endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// The virtualenv's python, the virtualenv made first if need be.
pub fn python() -> PathBuf {
    let venv = std::env::var_os("CULVERT_MOTO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/culvert-moto")
        });
    let python = venv.join("bin/python");
    let marker = venv.join(format!(".moto-{MOTO_VERSION}"));
    std::fs::create_dir_all(venv.parent().expect("the venv has a parent")).unwrap();
    let lock = std::fs::File::create(venv.with_extension("lock")).unwrap();
    lock.lock().unwrap();
    if !marker.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 on the PATH (make deps installs it)");
        assert!(
            status.success(),
            "python3 -m venv {} failed",
            venv.display()
        );
        let status = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", &format!("moto[server]=={MOTO_VERSION}")])
            .status()
            .unwrap();
        assert!(status.success(), "pip install moto[server] failed");
        std::fs::write(&marker, "").unwrap();
    }
    python
}

impl Moto {
    /// A running server, answering when this returns.
    pub fn start() -> Moto {
        let python = python();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let address = format!("127.0.0.1:{port}");
        while TcpStream::connect(&address).is_err() {
            if let Some(status) = moto.child.try_wait().unwrap() {
                panic!("moto exited before it answered: {status}");
            }
            assert!(Instant::now() < deadline, "moto did not answer within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
