//! The embedded adapters run the shared port contract suites.

use std::sync::Arc;

use galley_embedded::{MemoryCache, SqliteRecipeRepository, SqliteStore};
use galley_kernel::Cache;
use galley_recipes::RecipeRepository;
use tempfile::TempDir;

/// A fresh database in its own temporary directory, removed when the returned guard drops.
async fn fresh_repository() -> Option<(Arc<dyn RecipeRepository>, TempDir)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("galley.db")).await.expect("open store");
    Some((Arc::new(SqliteRecipeRepository::new(&store)), dir))
}

async fn fresh_cache() -> Option<(Arc<dyn Cache>, ())> {
    Some((Arc::new(MemoryCache::new(1024 * 1024)), ()))
}

mod sqlite_recipe_repository {
    use super::*;
    galley_test_support::recipe_repository_contract_tests!(fresh_repository());
}

mod memory_cache {
    use super::*;
    galley_test_support::cache_contract_tests!(fresh_cache());
}
