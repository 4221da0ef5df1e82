//! moto's S3 server for tests of the `s3` publisher and S3 inputs.

/// moto's S3 server on a loopback port, stopped on drop.
pub struct Moto {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// `None` when moto is not installed, unless `SKREI_REQUIRE_S3=1` (CI),
    /// where its absence fails the test.
    pub fn start() -> Option<Moto> {
        use std::io::BufRead;
        let spawned = std::process::Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let required = std::env::var("SKREI_REQUIRE_S3").is_ok_and(|v| v == "1");
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if !required => {
                eprintln!("skipping: cannot start moto ({e}); `pip install 'moto[server]'`");
                return None;
            }
            Err(e) => panic!("SKREI_REQUIRE_S3=1 but moto does not start: {e}"),
        };
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut endpoint = None;
        let mut lines = stderr.lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(i) = line.find("http://127.0.0.1:") {
                endpoint = Some(line[i..].trim().to_string());
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        match endpoint {
            Some(endpoint) => Some(Moto { child, endpoint }),
            None if !required => {
                eprintln!("skipping: moto did not start; `pip install 'moto[server]'`");
                let _ = child.kill();
                let _ = child.wait();
                None
            }
            None => panic!("SKREI_REQUIRE_S3=1 but moto did not start"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Creates a bucket (moto takes any credentials).
    pub fn create_bucket(&self, name: &str) {
        self.request("PUT", &format!("/{name}"), &[]);
    }

    /// Writes an object directly, as another tool would.
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        self.request("PUT", &format!("/{bucket}/{key}"), body);
    }

    /// One plain HTTP/1.1 request to moto, which accepts unsigned ones;
    /// panics unless it answers 200.
    fn request(&self, method: &str, path: &str, body: &[u8]) {
        use std::io::{Read, Write};
        let addr = self.endpoint.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).expect("moto listens");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "{method} {path}: {}",
            answer.lines().next().unwrap_or_default()
        );
    }
}
