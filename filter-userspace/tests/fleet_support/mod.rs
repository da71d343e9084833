//! A real etcd of one test alone: loopback, free ports (never 2379/2380, which a system
//! etcd may hold), a temporary data directory; killed on drop. With TLS: a throwaway CA,
//! etcd's server certificate and client certificates made with `openssl`.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

pub struct Etcd {
    pub url: String,
    peer: String,
    dir: PathBuf,
    child: Option<Child>,
    /// TLS flags of the server, and of `etcdctl` (as root).
    server_tls: Vec<String>,
    ctl_tls: Vec<String>,
}

/// A loopback port nothing listens on (as the test starts).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("address").port()
}

/// `etcd` on the PATH, or a printed reason to skip.
pub fn etcd_installed(test: &str) -> bool {
    let found = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("skipping {test}: `etcd` is not installed (cargo xtask setup installs it)");
    }
    found
}

#[allow(dead_code, reason = "each test file uses a different part")]
impl Etcd {
    pub fn start(tag: &str) -> Etcd {
        let dir = std::env::temp_dir().join(format!("gf-etcd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut etcd = Etcd {
            url: format!("http://127.0.0.1:{}", free_port()),
            peer: format!("http://127.0.0.1:{}", free_port()),
            dir,
            child: None,
            server_tls: Vec::new(),
            ctl_tls: Vec::new(),
        };
        etcd.restart();
        etcd
    }

    /// An etcd that serves only TLS and wants a client certificate signed by `pki`'s CA;
    /// `etcdctl` here runs as `root` (a client certificate with that CN).
    pub fn start_tls(tag: &str, pki: &Pki) -> Etcd {
        let dir = std::env::temp_dir().join(format!("gf-etcd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = |p: PathBuf| p.display().to_string();
        let server_tls = vec![
            "--cert-file".into(),
            path(pki.cert("server")),
            "--key-file".into(),
            path(pki.key("server")),
            "--client-cert-auth".into(),
            "--trusted-ca-file".into(),
            path(pki.ca()),
        ];
        let ctl_tls = vec![
            "--cacert".into(),
            path(pki.ca()),
            "--cert".into(),
            path(pki.cert("root")),
            "--key".into(),
            path(pki.key("root")),
        ];
        let mut etcd = Etcd {
            url: format!("https://127.0.0.1:{}", free_port()),
            peer: format!("http://127.0.0.1:{}", free_port()),
            dir,
            child: None,
            server_tls,
            ctl_tls,
        };
        etcd.restart();
        etcd
    }

    /// `etcdctl` against this etcd (as root when it has TLS).
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new("etcdctl")
            .args(["--endpoints", &self.url])
            .args(&self.ctl_tls)
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .expect("running etcdctl")
    }

    /// Starts it again on the same ports and data: what a relay sees after an outage.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "etcd is running");
        let child = Command::new("etcd")
            .args(["--name", "gf-test", "--data-dir"])
            .arg(&self.dir)
            .args(["--listen-client-urls", &self.url])
            .args(["--advertise-client-urls", &self.url])
            .args(["--listen-peer-urls", &self.peer])
            .args(["--initial-advertise-peer-urls", &self.peer])
            .args(["--initial-cluster", &format!("gf-test={}", self.peer)])
            .args(&self.server_tls)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting etcd");
        self.child = Some(child);
        let started = Instant::now();
        while !self.healthy() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "etcd did not start"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn healthy(&self) -> bool {
        self.ctl(&["endpoint", "health"]).status.success()
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `openssl` on the PATH, or a printed reason to skip.
#[allow(dead_code, reason = "only the TLS tests make certificates")]
pub fn openssl_installed(test: &str) -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("skipping {test}: `openssl` is not installed");
    }
    found
}

/// A throwaway PKI in a temporary directory, removed on drop: a CA, etcd's server
/// certificate for 127.0.0.1, client certificates by CN (as docs/fleet.md makes them),
/// and for each client a `rogue-CN` certificate of the same CN from another CA.
pub struct Pki {
    pub dir: PathBuf,
}

#[allow(dead_code, reason = "only the TLS tests make certificates")]
impl Pki {
    pub fn new(tag: &str, clients: &[&str]) -> Pki {
        let dir = std::env::temp_dir().join(format!("gf-pki-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the PKI directory");
        let pki = Pki { dir };
        pki.ca_named("ca", "geofence-etcd-ca");
        pki.ca_named("rogue-ca", "someone-else");
        pki.issue(
            "ca",
            "server",
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        for cn in clients {
            pki.issue("ca", cn, cn, "extendedKeyUsage=clientAuth\n");
            pki.issue(
                "rogue-ca",
                &format!("rogue-{cn}"),
                cn,
                "extendedKeyUsage=clientAuth\n",
            );
        }
        pki
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }

    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-key.pem"))
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("running openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ca_named(&self, file: &str, cn: &str) {
        let (key, cert) = (format!("{file}-key.pem"), format!("{file}.pem"));
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &key,
            "-out",
            &cert,
        ]);
    }

    fn issue(&self, ca: &str, name: &str, cn: &str, extensions: &str) {
        let ext = format!("{name}.ext");
        std::fs::write(self.dir.join(&ext), extensions).expect("writing extensions");
        let (key, csr, cert) = (
            format!("{name}-key.pem"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}-key.pem"),
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ]);
    }

    /// The `fleet`/`daemon` flags of a client certificate.
    pub fn flags(&self, name: &str) -> Vec<String> {
        let path = |p: PathBuf| p.display().to_string();
        vec![
            "--etcd-ca".into(),
            path(self.ca()),
            "--etcd-cert".into(),
            path(self.cert(name)),
            "--etcd-key".into(),
            path(self.key(name)),
        ]
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
