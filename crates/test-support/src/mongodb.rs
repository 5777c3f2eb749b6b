//! Test hygiene on a MongoDB server named by `GALLEY_TEST_MONGODB_URI`: every test works in a database of
//! its own, and this guard drops it when the test ends — also when the test panicked.
//!
//! Why the drop opens a client of its own: `Drop` is synchronous and runs on the test's runtime thread.
//! The driver's connection pool and server monitors are tasks on the runtime that created the client, so
//! blocking that thread while another runtime awaits `Database::drop` through the *same* client waits for
//! tasks that can never run (every contract case used to hang there, on a current-thread runtime). The
//! guard therefore owns only the URI and the name, and drops the database through a fresh client on a
//! short-lived runtime in a thread of its own, bounded by [`TEARDOWN_TIMEOUT`].

use std::time::Duration;

/// How long dropping a test database may take before the guard gives up (and says so on stderr).
pub const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a whole MongoDB end-to-end test may run: a hang fails in minutes, not in CI's 90.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(240);

/// A fresh database name on the server in `GALLEY_TEST_MONGODB_URI`, dropped when this guard is.
#[derive(Debug)]
pub struct MongoTestDatabase {
    pub uri: String,
    pub name: String,
}

impl MongoTestDatabase {
    /// A guard for a new database (`galley_test_<uuid>`), or `None` when no server is named.
    pub fn from_env() -> Option<Self> {
        let uri = std::env::var("GALLEY_TEST_MONGODB_URI").ok().filter(|uri| !uri.trim().is_empty())?;
        Some(Self { uri, name: format!("galley_test_{}", uuid::Uuid::now_v7().simple()) })
    }
}

impl Drop for MongoTestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let dropped =
            through_own_client(&self.uri, move |client| async move { client.database(&name).drop().await });
        if let Err(error) = dropped {
            eprintln!("could not drop test database {}: {error}", self.name);
        }
    }
}

/// A user created in `admin` for one test (e.g. a stand-in for a user Vault's MongoDB plugin leases),
/// dropped when this guard is, through a client of its own for the reason given at the top.
#[derive(Debug)]
pub struct MongoTestUser {
    pub uri: String,
    pub username: String,
    pub password: String,
}

impl MongoTestUser {
    /// Creates `username` in `admin` with `readWrite` on `database` (what Galley's store role grants),
    /// through `admin`, a client on the test server allowed to create users.
    pub async fn create(
        admin: &mongodb::Client,
        uri: &str,
        username: &str,
        database: &str,
    ) -> mongodb::error::Result<Self> {
        let password = format!("pw-{}", uuid::Uuid::now_v7().simple());
        let command = mongodb::bson::doc! {
            "createUser": username,
            "pwd": &password,
            "roles": [{ "role": "readWrite", "db": database }],
        };
        admin.database("admin").run_command(command).await?;
        Ok(Self { uri: uri.to_owned(), username: username.to_owned(), password })
    }
}

impl Drop for MongoTestUser {
    fn drop(&mut self) {
        let username = self.username.clone();
        let dropped = through_own_client(&self.uri, move |client| async move {
            client
                .database("admin")
                .run_command(mongodb::bson::doc! { "dropUser": username })
                .await
                .map(|_| ())
        });
        if let Err(error) = dropped {
            eprintln!("could not drop test user {}: {error}", self.username);
        }
    }
}

/// Runs `work` with a fresh client on `uri`, on a short-lived runtime in a thread of its own, bounded
/// by [`TEARDOWN_TIMEOUT`] (see the top of this module for why teardown cannot use the test's client).
fn through_own_client<F, Fut>(uri: &str, work: F) -> Result<(), String>
where
    F: FnOnce(mongodb::Client) -> Fut + Send + 'static,
    Fut: Future<Output = mongodb::error::Result<()>>,
{
    let uri = uri.to_owned();
    let done = std::thread::spawn(move || -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| error.to_string())?;
        runtime.block_on(async move {
            let run = async {
                let client = mongodb::Client::with_uri_str(&uri).await.map_err(|error| error.to_string())?;
                work(client.clone()).await.map_err(|error| error.to_string())?;
                client.shutdown().await;
                Ok(())
            };
            tokio::time::timeout(TEARDOWN_TIMEOUT, run)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {TEARDOWN_TIMEOUT:?}")))
        })
    })
    .join();
    done.unwrap_or_else(|_| Err("the teardown thread panicked".to_owned()))
}
