//! The recipe repository contract. Every adapter of `RecipeRepository` must pass all of it; the MongoDB
//! adapter runs it unchanged.
//!
//! Usage, in an adapter's `tests/` file:
//! ```ignore
//! galley_test_support::recipe_repository_contract_tests!(async { Arc::new(make_empty_repo().await) });
//! ```

use std::sync::Arc;

use galley_kernel::PageRequest;
use galley_recipes::{RecipeId, RecipeQuery, RecipeRepository, RecipeSort, Revision, TagMatch, WriteOutcome};

use crate::fixtures::{draft, epoch, recipe};

type Repo = Arc<dyn RecipeRepository>;

fn query(
    page: u32,
    limit: u32,
    tags: &[&str],
    tag_match: TagMatch,
    text: Option<&str>,
    sort: RecipeSort,
) -> RecipeQuery {
    let tags: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
    let page = PageRequest::new(page, limit).unwrap_or_else(|v| panic!("valid page: {v}"));
    RecipeQuery::new(page, &tags, tag_match, text, sort).unwrap_or_else(|v| panic!("valid query: {v}"))
}

fn names(page: &galley_kernel::Page<galley_recipes::Recipe>) -> Vec<&str> {
    page.items.iter().map(|r| r.name.as_str()).collect()
}

async fn insert_all(repo: &Repo, recipes: &[galley_recipes::Recipe]) {
    for recipe in recipes {
        repo.insert(recipe).await.unwrap_or_else(|e| panic!("insert {}: {e}", recipe.name));
    }
}

pub async fn inserted_recipes_read_back_identically(repo: Repo) {
    let original = recipe("Phở bò", &["soup", "vietnamese"], &["beef", "rice noodles"], 0);
    repo.insert(&original).await.expect("insert");
    let read = repo.get(original.id).await.expect("get").expect("present");
    assert_eq!(read, original);
    assert_eq!(repo.count().await.expect("count"), 1);
}

pub async fn unknown_ids_are_absent(repo: Repo) {
    assert!(repo.get(RecipeId::generate()).await.expect("get").is_none());
}

pub async fn empty_store_lists_nothing(repo: Repo) {
    let page = repo.list(&RecipeQuery::default()).await.expect("list");
    assert!(page.items.is_empty());
    assert_eq!(page.total, 0);
    assert_eq!(repo.count().await.expect("count"), 0);
}

pub async fn lists_newest_first_by_default_with_accurate_totals(repo: Repo) {
    let all: Vec<_> = (0..5).map(|i| recipe(&format!("Recipe {i}"), &[], &["water"], i)).collect();
    insert_all(&repo, &all).await;
    let first =
        repo.list(&query(1, 2, &[], TagMatch::Any, None, RecipeSort::PublishedDesc)).await.expect("list");
    assert_eq!(names(&first), ["Recipe 4", "Recipe 3"]);
    assert_eq!(first.total, 5);
    assert_eq!(first.total_pages(), 3);
    let last =
        repo.list(&query(3, 2, &[], TagMatch::Any, None, RecipeSort::PublishedDesc)).await.expect("list");
    assert_eq!(names(&last), ["Recipe 0"]);
    assert_eq!(last.total, 5);
}

pub async fn a_page_past_the_end_is_empty_but_keeps_the_total(repo: Repo) {
    insert_all(&repo, &[recipe("Only", &[], &["water"], 0)]).await;
    let page =
        repo.list(&query(9, 10, &[], TagMatch::Any, None, RecipeSort::PublishedDesc)).await.expect("list");
    assert!(page.items.is_empty());
    assert_eq!(page.total, 1);
}

pub async fn sorts_oldest_first_and_by_name_case_insensitively(repo: Repo) {
    insert_all(
        &repo,
        &[
            recipe("banana bread", &[], &["banana"], 1),
            recipe("Apple pie", &[], &["apple"], 2),
            recipe("Cherry tart", &[], &["cherry"], 0),
        ],
    )
    .await;
    let oldest =
        repo.list(&query(1, 10, &[], TagMatch::Any, None, RecipeSort::PublishedAsc)).await.expect("list");
    assert_eq!(names(&oldest), ["Cherry tart", "banana bread", "Apple pie"]);
    let by_name = repo.list(&query(1, 10, &[], TagMatch::Any, None, RecipeSort::Name)).await.expect("list");
    assert_eq!(names(&by_name), ["Apple pie", "banana bread", "Cherry tart"]);
}

pub async fn ties_are_broken_by_id_so_pages_never_overlap(repo: Repo) {
    // Same publication instant for all: only the id orders them.
    let all: Vec<_> = (0..6).map(|i| recipe(&format!("Same {i}"), &[], &["salt"], 0)).collect();
    insert_all(&repo, &all).await;
    let mut seen = Vec::new();
    for page in 1..=3 {
        let listed = repo
            .list(&query(page, 2, &[], TagMatch::Any, None, RecipeSort::PublishedDesc))
            .await
            .expect("list");
        seen.extend(listed.items.into_iter().map(|r| r.id));
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "every recipe appears exactly once across pages");
}

pub async fn tag_filters_match_any_or_all(repo: Repo) {
    insert_all(
        &repo,
        &[
            recipe("Pho", &["soup", "vietnamese"], &["beef"], 0),
            recipe("Minestrone", &["soup", "italian"], &["beans"], 1),
            recipe("Banh mi", &["vietnamese"], &["bread"], 2),
            recipe("Toast", &[], &["bread"], 3),
        ],
    )
    .await;
    let any = repo
        .list(&query(1, 10, &["soup", "vietnamese"], TagMatch::Any, None, RecipeSort::Name))
        .await
        .expect("list");
    assert_eq!(names(&any), ["Banh mi", "Minestrone", "Pho"]);
    assert_eq!(any.total, 3);
    let all = repo
        .list(&query(1, 10, &["soup", "vietnamese"], TagMatch::All, None, RecipeSort::Name))
        .await
        .expect("list");
    assert_eq!(names(&all), ["Pho"]);
    assert_eq!(all.total, 1);
    let none =
        repo.list(&query(1, 10, &["dessert"], TagMatch::Any, None, RecipeSort::Name)).await.expect("list");
    assert_eq!(none.total, 0);
}

pub async fn text_search_needs_every_term_in_name_tags_or_ingredients(repo: Repo) {
    insert_all(
        &repo,
        &[
            recipe("Garlic Noodles", &["quick"], &["noodles", "butter"], 0),
            recipe("Cà ri gà", &["vietnamese"], &["chicken", "Coconut Milk"], 1),
            recipe("Plain rice", &["side"], &["rice", "water"], 2),
        ],
    )
    .await;
    let by_name =
        repo.list(&query(1, 10, &[], TagMatch::Any, Some("GARLIC"), RecipeSort::Name)).await.expect("list");
    assert_eq!(names(&by_name), ["Garlic Noodles"]);
    let by_ingredient =
        repo.list(&query(1, 10, &[], TagMatch::Any, Some("coconut"), RecipeSort::Name)).await.expect("list");
    assert_eq!(names(&by_ingredient), ["Cà ri gà"]);
    let unicode_case =
        repo.list(&query(1, 10, &[], TagMatch::Any, Some("CÀ RI"), RecipeSort::Name)).await.expect("list");
    assert_eq!(names(&unicode_case), ["Cà ri gà"]);
    let by_tag_prefix =
        repo.list(&query(1, 10, &[], TagMatch::Any, Some("vietnam"), RecipeSort::Name)).await.expect("list");
    assert_eq!(names(&by_tag_prefix), ["Cà ri gà"]);
    let every_term = repo
        .list(&query(1, 10, &[], TagMatch::Any, Some("rice water"), RecipeSort::Name))
        .await
        .expect("list");
    assert_eq!(names(&every_term), ["Plain rice"]);
    let no_match = repo
        .list(&query(1, 10, &[], TagMatch::Any, Some("rice chicken"), RecipeSort::Name))
        .await
        .expect("list");
    assert_eq!(no_match.total, 0);
    // Characters with meaning in SQL LIKE or regular expressions are matched literally.
    let literal =
        repo.list(&query(1, 10, &[], TagMatch::Any, Some("%"), RecipeSort::Name)).await.expect("list");
    assert_eq!(literal.total, 0);
    let regex =
        repo.list(&query(1, 10, &[], TagMatch::Any, Some(".*"), RecipeSort::Name)).await.expect("list");
    assert_eq!(regex.total, 0);
}

pub async fn filters_combine(repo: Repo) {
    insert_all(
        &repo,
        &[
            recipe("Garlic soup", &["soup"], &["garlic"], 0),
            recipe("Garlic bread", &["bread"], &["garlic"], 1),
        ],
    )
    .await;
    let page = repo
        .list(&query(1, 10, &["soup"], TagMatch::Any, Some("garlic"), RecipeSort::Name))
        .await
        .expect("list");
    assert_eq!(names(&page), ["Garlic soup"]);
}

pub async fn conditional_update_replaces_content_and_tags(repo: Repo) {
    let original = recipe("Tea", &["drink"], &["tea leaves"], 0);
    repo.insert(&original).await.expect("insert");
    let revised = original.revise(draft("Iced tea", &["cold", "drink"], &["tea leaves", "ice"]), epoch());
    assert_eq!(repo.update(&revised, original.revision).await.expect("update"), WriteOutcome::Done);
    assert_eq!(repo.get(original.id).await.expect("get"), Some(revised.clone()));
    let cold =
        repo.list(&query(1, 10, &["cold"], TagMatch::Any, None, RecipeSort::Name)).await.expect("list");
    assert_eq!(names(&cold), ["Iced tea"]);
    let found =
        repo.list(&query(1, 10, &[], TagMatch::Any, Some("ice"), RecipeSort::Name)).await.expect("list");
    assert_eq!(found.total, 1);
}

pub async fn stale_updates_and_deletes_are_refused(repo: Repo) {
    let original = recipe("Tea", &["drink"], &["tea leaves"], 0);
    repo.insert(&original).await.expect("insert");
    let first = original.revise(draft("Green tea", &[], &["green tea"]), epoch());
    assert_eq!(repo.update(&first, Revision::FIRST).await.expect("update"), WriteOutcome::Done);
    // A second writer who also read revision 1 loses.
    let second = original.revise(draft("Black tea", &[], &["black tea"]), epoch());
    assert_eq!(repo.update(&second, Revision::FIRST).await.expect("update"), WriteOutcome::RevisionMismatch);
    assert_eq!(
        repo.delete(original.id, Revision::FIRST).await.expect("delete"),
        WriteOutcome::RevisionMismatch
    );
    assert_eq!(repo.get(original.id).await.expect("get").map(|r| r.name), Some("Green tea".to_owned()));
}

pub async fn writes_to_missing_recipes_report_not_found(repo: Repo) {
    let ghost = recipe("Ghost", &[], &["air"], 0);
    assert_eq!(repo.update(&ghost, Revision::FIRST).await.expect("update"), WriteOutcome::NotFound);
    assert_eq!(repo.delete(ghost.id, Revision::FIRST).await.expect("delete"), WriteOutcome::NotFound);
}

pub async fn deleted_recipes_disappear_from_reads_and_lists(repo: Repo) {
    let doomed = recipe("Doomed", &["gone"], &["x"], 0);
    let kept = recipe("Kept", &["gone"], &["y"], 1);
    insert_all(&repo, &[doomed.clone(), kept]).await;
    assert_eq!(repo.delete(doomed.id, doomed.revision).await.expect("delete"), WriteOutcome::Done);
    assert!(repo.get(doomed.id).await.expect("get").is_none());
    let tagged =
        repo.list(&query(1, 10, &["gone"], TagMatch::Any, None, RecipeSort::Name)).await.expect("list");
    assert_eq!(names(&tagged), ["Kept"]);
    assert_eq!(repo.count().await.expect("count"), 1);
}

pub async fn concurrent_conditional_updates_let_exactly_one_win(repo: Repo) {
    let original = recipe("Race", &[], &["x"], 0);
    repo.insert(&original).await.expect("insert");
    let attempts = (0..8).map(|i| {
        let repo = Arc::clone(&repo);
        let revised = original.revise(draft(&format!("Winner {i}"), &[], &["x"]), epoch());
        async move { repo.update(&revised, Revision::FIRST).await.expect("update") }
    });
    let outcomes = futures::future::join_all(attempts).await;
    assert_eq!(outcomes.iter().filter(|o| **o == WriteOutcome::Done).count(), 1, "{outcomes:?}");
    let stored = repo.get(original.id).await.expect("get").expect("present");
    assert_eq!(stored.revision, Revision::new(2));
}

pub async fn answers_pings(repo: Repo) {
    repo.ping().await.expect("ping");
}

/// Expands into one `#[tokio::test]` per contract case. `$make` is an expression evaluating to a future
/// that yields `Some((fresh empty Arc<dyn RecipeRepository>, guard))`, the guard (a temp dir, a server
/// handle, ...) living until the case ends, or `None` to skip (e.g. no server), which is printed. A leading
/// attribute (`#[ignore = "why"]`) is put on every case.
#[macro_export]
macro_rules! recipe_repository_contract_tests {
    (#[$attr:meta] $make:expr) => {
        $crate::recipe_repository_contract_tests!(@cases [$attr] $make;
            inserted_recipes_read_back_identically,
            unknown_ids_are_absent,
            empty_store_lists_nothing,
            lists_newest_first_by_default_with_accurate_totals,
            a_page_past_the_end_is_empty_but_keeps_the_total,
            sorts_oldest_first_and_by_name_case_insensitively,
            ties_are_broken_by_id_so_pages_never_overlap,
            tag_filters_match_any_or_all,
            text_search_needs_every_term_in_name_tags_or_ingredients,
            filters_combine,
            conditional_update_replaces_content_and_tags,
            stale_updates_and_deletes_are_refused,
            writes_to_missing_recipes_report_not_found,
            deleted_recipes_disappear_from_reads_and_lists,
            concurrent_conditional_updates_let_exactly_one_win,
            answers_pings,
        );
    };
    ($make:expr) => {
        $crate::recipe_repository_contract_tests!(#[cfg_attr(any(), ignore)] $make);
    };
    (@cases [$attr:meta] $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            #[$attr]
            async fn $case() {
                $crate::contracts::run_case(stringify!($case), $make, $crate::contracts::recipe_repository::$case).await;
            }
        )+
    };
}
