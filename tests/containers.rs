//! hermod in containers, with podman and no registry: an image built from the repository's
//! Containerfile (on a base made here from the binary's libraries and the CA bundle),
//! run with host networking, takes a message and relays it to a sink and answers
//! /health; then the Kubernetes manifest (deploy/kubernetes/hermod.yaml) played with
//! `podman kube play` does the same. podman 4.3 (Debian bookworm) plays Pods, not
//! StatefulSets, crashes on Secret volumes and has no volume claims, so the test plays the
//! StatefulSet's pod template as a Pod, with the Secret's files in a ConfigMap, an
//! emptyDir for the spool, host networking on free ports, and the admin server on
//! loopback (no token); everything else is the manifest as shipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::client::{Client, queue_id};
use common::sink;

/// podman with runc and the machine's own open-files limit (see DEPENDENCIES.md).
struct Podman {
    conf: PathBuf,
}

impl Podman {
    fn new(dir: &Path) -> Podman {
        let hard = Command::new("sh")
            .args(["-c", "ulimit -Hn"])
            .output()
            .unwrap();
        let hard = String::from_utf8_lossy(&hard.stdout).trim().to_string();
        let conf = dir.join("containers.conf");
        std::fs::write(
            &conf,
            format!("[containers]\ndefault_ulimits = [\"nofile={hard}:{hard}\", \"nproc=32768:32768\"]\n[engine]\nruntime = \"runc\"\n"),
        )
        .unwrap();
        Podman { conf }
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new("podman")
            .args(args)
            .env("CONTAINERS_CONF", &self.conf)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("podman (Debian packages podman, runc, catatonit; see .ci/run)");
        assert!(
            out.status.success(),
            "podman {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn quiet(&self, args: &[&str]) {
        let _ = Command::new("podman")
            .args(args)
            .env("CONTAINERS_CONF", &self.conf)
            .output();
    }
}

/// A base image with nothing but what hermod's binary links and the CA bundle.
fn base_image(podman: &Podman, dir: &Path, name: &str) {
    let binary = env!("CARGO_BIN_EXE_hermod");
    let rootfs = dir.join("base/rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let ldd = Command::new("ldd").arg(binary).output().unwrap();
    let libs: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(String::from)
        .chain(["/etc/ssl/certs/ca-certificates.crt".to_string()])
        .collect();
    for lib in &libs {
        let copied = Command::new("cp")
            .args(["-L", "--parents", lib])
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(copied.success(), "cp {lib}");
    }
    std::fs::write(
        dir.join("base/Containerfile"),
        "FROM scratch\nCOPY rootfs/ /\n",
    )
    .unwrap();
    podman.run(&[
        "build",
        "--pull=never",
        "-q",
        "-t",
        name,
        dir.join("base").to_str().unwrap(),
    ]);
}

/// The image from the repository's Containerfile with the binary these tests run.
fn hermod_image(podman: &Podman, base: &str, name: &str) {
    let binary = Path::new(env!("CARGO_BIN_EXE_hermod"));
    let relative = binary
        .strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .expect("the binary under the repository");
    podman.run(&[
        "build",
        "--pull=never",
        "-q",
        "--build-arg",
        &format!("BASE={base}"),
        "--build-arg",
        &format!("BINARY={}", relative.display()),
        "-f",
        "Containerfile",
        "-t",
        name,
        ".",
    ]);
}

async fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One message through hermod at `port` to the sink, and a healthy /health at `admin`.
async fn relays_and_is_healthy(port: u16, admin: u16, sink_dir: &Path, n: usize) {
    wait_port(port).await;
    let mut c = Client::connect(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await;
    queue_id(
        &c.send_message(
            "app@shop.test",
            &[&format!("user{n}@dest.test")],
            b"Subject: from a container\r\n\r\nhi\r\n",
        )
        .await,
    );
    let stored = sink::wait_stored(sink_dir, n, Duration::from_secs(30)).await;
    assert_eq!(stored.len(), n);
    let health = common::http::get(
        std::net::SocketAddr::from(([127, 0, 0, 1], admin)),
        "/health",
    )
    .await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json()["status"], "healthy");
}

/// The Secret's files (a test certificate for the submission listeners) and the spool,
/// each a directory owned by the pod's user, the files owner-only.
fn secrets_for_the_pod(dir: &Path, server: &common::certs::CertFiles) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let secrets = dir.join("pod/secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::create_dir_all(dir.join("pod/spool")).unwrap();
    std::fs::write(secrets.join("admin-token"), "a-token-for-the-test-only\n").unwrap();
    std::fs::copy(&server.cert, secrets.join("tls.crt")).unwrap();
    std::fs::copy(&server.key, secrets.join("tls.key")).unwrap();
    for name in ["admin-token", "tls.crt", "tls.key"] {
        std::fs::set_permissions(secrets.join(name), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    for path in [dir.join("pod"), dir.join("pod/spool"), secrets.clone()] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    // The pod runs as 10025 (the manifest's securityContext); the test runs as root.
    assert!(
        rustix::process::geteuid().is_root(),
        "the container tests run as root (as CI does): rootful podman, and files given to uid 10025"
    );
    let owned = Command::new("chown")
        .args(["-R", "10025:10025"])
        .arg(dir.join("pod"))
        .status()
        .unwrap();
    assert!(
        owned.success(),
        "chown (the container tests run as root, as CI does)"
    );
    secrets
}

/// The manifest made playable by podman 4.3 (see the module's comment).
const TO_POD: &str = r#"
import sys, yaml
src, out, image, suffix, port, admin, sink, submission, submissions, secrets = sys.argv[1:11]
docs = [d for d in yaml.safe_load_all(open(src)) if d]
kinds = [d["kind"] for d in docs]
assert {"ConfigMap", "Secret", "Service", "StatefulSet", "PodDisruptionBudget"} <= set(kinds), kinds
played = []
for d in docs:
    if d["kind"] == "ConfigMap":
        toml = d["data"]["hermod.toml"]
        toml = toml.replace("0.0.0.0:2525", "127.0.0.1:" + port).replace("0.0.0.0:8080", "127.0.0.1:" + admin)
        toml = toml.replace("0.0.0.0:2587", "127.0.0.1:" + submission).replace("0.0.0.0:2465", "127.0.0.1:" + submissions)
        toml = toml.replace('url = "redis://redis:6379"', 'url = ""').replace('networks = ["10.0.0.0/8"]', 'networks = ["127.0.0.0/8"]')
        toml = "\n".join(l for l in toml.split("\n") if not l.startswith("token_file"))
        d["data"]["hermod.toml"] = toml + '\n[delivery]\nrelayhost = "[127.0.0.1]:' + sink + '"\n'
        d["metadata"]["name"] += suffix
        played.append(d)
    elif d["kind"] == "Secret":
        # The Secret's files come from a directory the test made owner-only (podman
        # gives a volume's files mode 0644, which hermod refuses for a key).
        assert {"admin-token", "tls.crt", "tls.key"} <= set(d["stringData"]), d["stringData"].keys()
    elif d["kind"] == "StatefulSet":
        spec = d["spec"]["template"]["spec"]
        spec["hostNetwork"] = True
        c = spec["containers"][0]
        assert c["readinessProbe"]["httpGet"]["path"] == "/health"
        assert spec["terminationGracePeriodSeconds"] >= 30
        c["image"] = image
        c.pop("ports")
        c["readinessProbe"]["httpGet"]["port"] = int(admin)
        c["livenessProbe"]["tcpSocket"]["port"] = int(port)
        for v in spec["volumes"]:
            if "configMap" in v:
                v["configMap"]["name"] += suffix
                v["configMap"]["defaultMode"] = 0o755
            if "secret" in v:
                v.pop("secret")
                v["hostPath"] = {"path": secrets, "type": "Directory"}
        spec["volumes"].append({"name": "spool", "hostPath": {"path": secrets + "/../spool", "type": "Directory"}})
        played.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hermod" + suffix, "labels": d["spec"]["template"]["metadata"]["labels"]}, "spec": spec})
open(out, "w").write(yaml.safe_dump_all(played))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_and_the_kubernetes_manifest_run_and_relay() {
    let dir = tempfile::tempdir().unwrap();
    let podman = Podman::new(dir.path());
    let suffix = format!("-t{}", std::process::id());
    let (base, image) = (
        format!("localhost/hermod-base{suffix}"),
        format!("localhost/hermod{suffix}"),
    );
    let container = format!("hermod{suffix}");
    let played = dir.path().join("played.yaml");
    let _cleanup = Cleanup {
        podman: &podman,
        container: container.clone(),
        played: played.clone(),
        volume: format!("hermod-config{suffix}"),
        images: [image.clone(), base.clone()],
    };
    base_image(&podman, dir.path(), &base);
    hermod_image(&podman, &base, &image);
    let sink_dir = dir.path().join("sink");
    let sink = sink::start(&sink_dir).await;
    let sink_port = sink.local_addrs()[0].port().to_string();

    // The image alone, on the host's network.
    let (port, admin) = (common::free_port(), common::free_port());
    podman.run(&[
        "run",
        "-d",
        "--rm",
        "--network",
        "host",
        "--name",
        &container,
        "-e",
        &format!("SMTP_PORT={port}"),
        "-e",
        &format!("HERMOD_ADMIN_LISTEN=127.0.0.1:{admin}"),
        "-e",
        &format!("SMTP_RELAYHOST=[127.0.0.1]:{sink_port}"),
        &image,
    ]);
    relays_and_is_healthy(port, admin, &sink_dir, 1).await;
    // SIGTERM drains and stops it within the grace period.
    podman.run(&["stop", "-t", "30", &container]);

    // The Kubernetes manifest, with a certificate for its submission listeners.
    let (port, admin) = (common::free_port(), common::free_port());
    let (submission, submissions) = (common::free_port(), common::free_port());
    let ca = common::certs::TestCa::new(dir.path());
    let server = ca.issue(dir.path(), "server", &["localhost"], false);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/hermod.yaml");
    let converted = Command::new(common::python3())
        .args(["-c", TO_POD])
        .arg(&manifest)
        .arg(&played)
        .args([
            &image,
            &suffix,
            &port.to_string(),
            &admin.to_string(),
            &sink_port,
            &submission.to_string(),
            &submissions.to_string(),
        ])
        .arg(secrets_for_the_pod(dir.path(), &server))
        .output()
        .unwrap();
    assert!(
        converted.status.success(),
        "{}",
        String::from_utf8_lossy(&converted.stderr)
    );
    podman.run(&["kube", "play", played.to_str().unwrap()]);
    relays_and_is_healthy(port, admin, &sink_dir, 2).await;
    // Its submission listener offers STARTTLS with the certificate from the Secret.
    let (mut c, _) =
        Client::connect_raw(std::net::SocketAddr::from(([127, 0, 0, 1], submission))).await;
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    wait_port(submissions).await;
}

/// Whatever a test started, stopped and removed however it ends.
struct Cleanup<'a> {
    podman: &'a Podman,
    container: String,
    played: PathBuf,
    volume: String,
    images: [String; 2],
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        self.podman.quiet(&["rm", "-f", &self.container]);
        self.podman
            .quiet(&["kube", "down", self.played.to_str().unwrap_or("")]);
        self.podman.quiet(&["volume", "rm", "-f", &self.volume]);
        self.podman
            .quiet(&["rmi", "-f", &self.images[0], &self.images[1]]);
    }
}
