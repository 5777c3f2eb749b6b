//! The MongoDB repositories run the same contract suites as the embedded store, against the server
//! named by `GALLEY_TEST_MONGODB_URI` (each case in its own database, dropped afterwards, and bounded by
//! `contracts::CASE_TIMEOUT` so a hang fails fast).
//!
//! MongoDB cannot be installed on our build machines, so every case is `#[ignore]`d with the reason
//! and shows as `ignored` in the test output; `make test` runs them (`--include-ignored`) when
//! `GALLEY_TEST_MONGODB_URI` is set and says plainly at the end when they were skipped. Run by hand:
//! `GALLEY_TEST_MONGODB_URI=mongodb://127.0.0.1:27017 cargo test -p galley-mongo -- --include-ignored`.

use std::sync::Arc;

use galley_identity::{ProviderSessionStore, RefreshTokenStore, SigningKeyStore, UserRepository};
use galley_mongo::{
    MongoEntryRepository, MongoFeedStateRepository, MongoJobRepository, MongoProviderSessionStore,
    MongoRecipeRepository, MongoRefreshTokenStore, MongoSigningKeyStore, MongoStore, MongoUserRepository,
};
use galley_recipes::RecipeRepository;
use galley_rss::ports::{EntryRepository, FeedStateRepository, JobRepository};
use galley_test_support::mongodb::MongoTestDatabase;

/// The case's own database and the guard that drops it (see `MongoTestDatabase` for why the drop
/// must not go through this store's client).
async fn store() -> Option<(MongoStore, MongoTestDatabase)> {
    let database = MongoTestDatabase::from_env()?;
    let settings = galley_platform::MongoDbSettings {
        uri: database.uri.as_str().into(),
        database: database.name.clone(),
        ..Default::default()
    };
    let store = MongoStore::connect(&settings)
        .await
        .unwrap_or_else(|error| panic!("GALLEY_TEST_MONGODB_URI: {error}"));
    Some((store, database))
}

macro_rules! fixture {
    ($name:ident, $port:path, $adapter:ident) => {
        async fn $name() -> Option<(Arc<dyn $port>, MongoTestDatabase)> {
            let (store, guard) = store().await?;
            Some((Arc::new($adapter::new(&store)), guard))
        }
    };
}

fixture!(recipes, RecipeRepository, MongoRecipeRepository);
fixture!(users, UserRepository, MongoUserRepository);
fixture!(refresh_tokens, RefreshTokenStore, MongoRefreshTokenStore);
fixture!(signing_keys, SigningKeyStore, MongoSigningKeyStore);
fixture!(provider_sessions, ProviderSessionStore, MongoProviderSessionStore);
fixture!(jobs, JobRepository, MongoJobRepository);
fixture!(entries, EntryRepository, MongoEntryRepository);
fixture!(feeds, FeedStateRepository, MongoFeedStateRepository);

mod mongo_recipes {
    use super::*;
    galley_test_support::recipe_repository_contract_tests!(
        #[ignore = "needs a MongoDB server: GALLEY_TEST_MONGODB_URI"]
        recipes()
    );
}

mod mongo_users {
    use super::*;
    galley_test_support::user_repository_contract_tests!(
        #[ignore = "needs a MongoDB server: GALLEY_TEST_MONGODB_URI"]
        users()
    );
}

mod mongo_refresh_tokens {
    use super::*;
    galley_test_support::refresh_token_store_contract_tests!(
        #[ignore = "needs a MongoDB server: GALLEY_TEST_MONGODB_URI"]
        refresh_tokens()
    );
}

mod mongo_provider_sessions {
    use super::*;
    galley_test_support::provider_session_store_contract_tests!(
        #[ignore = "needs a MongoDB server: GALLEY_TEST_MONGODB_URI"]
        provider_sessions()
    );
}

mod mongo_signing_keys {
    use super::*;
    galley_test_support::signing_key_store_contract_tests!(
        #[ignore = "needs a MongoDB server: GALLEY_TEST_MONGODB_URI"]
        signing_keys()
    );
}

mod mongo_rss {
    use super::*;
    galley_test_support::rss_store_contract_tests!(#[ignore = "needs a MongoDB server: GALLEY_TEST_MONGODB_URI"] jobs: jobs(), entries: entries(), feeds: feeds());
}
