//! Test hygiene on a shared Redis: every test works under its own key prefix, and this guard deletes the
//! prefix's keys when the test ends, so the server keeps nothing between runs.

/// Deletes every key starting with `prefix` on `url` when dropped.
#[derive(Debug)]
pub struct PrefixCleanup {
    pub url: String,
    pub prefix: String,
}

impl PrefixCleanup {
    /// A fresh prefix (`galley-test:<uuid>:`) on `url`, with its cleanup.
    pub fn fresh(url: &str) -> Self {
        Self { url: url.to_owned(), prefix: format!("galley-test:{}:", uuid::Uuid::now_v7().simple()) }
    }
}

impl Drop for PrefixCleanup {
    fn drop(&mut self) {
        let Ok(mut connection) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{}*", self.prefix)).query(&mut connection).unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

/// A private `redis-server` (the machine's, `apt-get install redis-server`) on a free loopback port,
/// with a `requirepass` admin password and no persistence: what a secrets engine that creates ACL users
/// (OpenBao's redis database plugin) needs. Stopped and its directory deleted when dropped.
#[derive(Debug)]
pub struct PrivateRedis {
    port: u16,
    password: String,
    _process: crate::process::OwnedProcess,
}

impl PrivateRedis {
    /// Starts the server with `password` for the `default` user and waits until it listens.
    pub fn start(password: &str) -> Self {
        let binary = std::path::Path::new("/usr/bin/redis-server");
        assert!(binary.exists(), "redis-server is needed by this test: apt-get install redis-server");
        let dir = crate::process::temp_dir("redis");
        let port = crate::process::free_port();
        let log = dir.join("redis.log");
        let port_arg = port.to_string();
        let dir_arg = dir.display().to_string();
        let args = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port_arg,
            "--requirepass",
            password,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir_arg,
        ];
        let mut process = crate::process::OwnedProcess::spawn(binary, &args, &[], dir, &log);
        crate::process::wait_for_port(
            &mut process.child,
            port,
            std::time::Duration::from_secs(30),
            "redis-server",
            &log,
        );
        Self { port, password: password.to_owned(), _process: process }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>` (no credentials).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis://default:<password>@127.0.0.1:<port>`, the administrator.
    pub fn admin_url(&self) -> String {
        format!("redis://default:{}@127.0.0.1:{}", self.password, self.port)
    }

    /// The ACL user names (`ACL USERS`), e.g. to see that leased users are gone.
    pub fn acl_users(&self) -> Vec<String> {
        let client = redis::Client::open(self.admin_url()).expect("redis url");
        let mut connection = client.get_connection().expect("redis admin connection");
        redis::cmd("ACL").arg("USERS").query(&mut connection).expect("ACL USERS")
    }
}
