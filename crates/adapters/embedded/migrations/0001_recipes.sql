-- Recipes are stored as JSON documents (the same shape the MongoDB adapter stores), with the few
-- columns that filtering and sorting need kept beside them and indexed.
CREATE TABLE recipes (
    id           TEXT PRIMARY KEY NOT NULL,
    doc          TEXT NOT NULL,
    revision     INTEGER NOT NULL,
    name_key     TEXT NOT NULL,    -- lower-cased name, for case-insensitive sorting
    published_us INTEGER NOT NULL, -- microseconds since the Unix epoch, for exact ordering
    search_text  TEXT NOT NULL     -- lower-cased name, tags and ingredients, for `q`
) STRICT;

CREATE INDEX recipes_by_published ON recipes (published_us, id);
CREATE INDEX recipes_by_name ON recipes (name_key, id);

-- One row per (tag, recipe) so tag filters use an index instead of scanning JSON.
CREATE TABLE recipe_tags (
    tag       TEXT NOT NULL,
    recipe_id TEXT NOT NULL REFERENCES recipes (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, recipe_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX recipe_tags_by_recipe ON recipe_tags (recipe_id);
