//! MovieLens loaders: 100K as shipped (`u.data`, `u.item`, `u.user`, `u.genre`) and the
//! "latest"/20M/25M CSV format (`ratings.csv`, `movies.csv`).
use super::dataset::{Catalog, Dataset, Format, IdMap, ItemMeta, Rating, RatingScale, Source};
use super::error::DataError;
use super::input::{open, Dialect, Records};
use std::io::Read;
use std::path::Path;

/// The 19 genres of MovieLens 100K, in flag order (used when `u.genre` is absent).
pub const ML100K_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

const PIPE: Dialect = Dialect {
    delimiter: b'|',
    quoting: false,
};
const TAB: Dialect = Dialect {
    delimiter: b'\t',
    quoting: false,
};
const CSV: Dialect = Dialect {
    delimiter: b',',
    quoting: true,
};

/// Fails with "empty" or "header only" when a file yielded no data records.
fn require_records<R: Read>(
    rec: &Records<R>,
    n: usize,
    header: bool,
    what: &str,
) -> Result<(), DataError> {
    if n > 0 {
        Ok(())
    } else if header || rec.saw_content() {
        Err(DataError::invalid(
            rec.path(),
            None,
            format!("header only: expected at least one line of {what}"),
        ))
    } else {
        Err(DataError::invalid(
            rec.path(),
            None,
            format!("file is empty: expected lines of {what}"),
        ))
    }
}

/// Reads `u.genre` (`name|index`, indices 0, 1, 2, ... in order).
pub fn read_u_genre<R: Read>(reader: R, path: &Path) -> Result<Vec<String>, DataError> {
    let mut rec = Records::new(reader, path, PIPE)?;
    let mut genres = Vec::new();
    while rec.advance()? {
        rec.expect_fields(2, "genre|index")?;
        let name = rec.text(0);
        if name.is_empty() {
            return Err(rec.bad(0, "genre", "a genre name"));
        }
        let index = rec.integer(1, "index")?;
        if index != genres.len() as i64 {
            return Err(rec.bad(1, "index", format!("genre index {}", genres.len())));
        }
        genres.push(name);
    }
    require_records(&rec, genres.len(), false, "genre|index")?;
    Ok(genres)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The year of a `DD-Mon-YYYY` date.
fn date_year(date: &str) -> Option<i32> {
    let mut parts = date.split('-');
    let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
    let day_ok =
        (1..=2).contains(&d.len()) && d.parse::<u32>().is_ok_and(|d| (1..=31).contains(&d));
    let year_ok = y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit());
    if parts.next().is_none() && day_ok && MONTHS.contains(&m) && year_ok {
        y.parse().ok()
    } else {
        None
    }
}

/// The year at the end of a MovieLens title, as in `Some Title (1995)`.
pub fn title_year(title: &str) -> Option<i32> {
    let t = title.trim_end().strip_suffix(')')?;
    let open = t.rfind('(')?;
    let y = &t[open + 1..];
    // Some titles carry a range such as (2007-2013): take the first year.
    let y = y.split(['-', '–']).next()?;
    if y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()) {
        y.parse().ok()
    } else {
        None
    }
}

/// Reads `u.item`: `id|title|release date|video release date|url|` then one 0/1 flag per
/// genre. Titles are UTF-8 or Latin-1. The release date may be empty (item 267).
pub fn read_u_item<R: Read>(
    reader: R,
    path: &Path,
    genres: &[String],
) -> Result<Catalog, DataError> {
    let mut rec = Records::new(reader, path, PIPE)?;
    let mut catalog = Catalog {
        genres: genres.to_vec(),
        ..Catalog::default()
    };
    let n_fields = 5 + genres.len();
    let mut first_line = std::collections::HashMap::new();
    while rec.advance()? {
        rec.expect_fields(n_fields, "id|title|date|video date|url|genre flags")?;
        let id = rec.int_id(0, "movie id")?;
        let title = rec.text(1);
        let date = rec.text(2);
        let date_year =
            if date.is_empty() {
                None
            } else {
                Some(date_year(&date).ok_or_else(|| {
                    rec.bad(2, "release date", "a date like 01-Jan-1995 or empty")
                })?)
            };
        let mut item_genres = Vec::new();
        for g in 0..genres.len() {
            match rec.raw(5 + g).trim_ascii() {
                b"1" => item_genres.push(g as u16),
                b"0" => {}
                _ => return Err(rec.bad(5 + g, "genre flag", "0 or 1")),
            }
        }
        let meta = ItemMeta {
            year: title_year(&title).or(date_year),
            title,
            genres: item_genres,
            has_metadata: true,
        };
        if catalog.add(&id, meta)?.is_none() {
            let first = first_line.get(&id).copied().unwrap_or(0);
            return Err(rec.bad(
                0,
                "movie id",
                format!("a movie id not already defined on line {first}"),
            ));
        }
        first_line.insert(id, rec.line());
    }
    require_records(&rec, catalog.len(), false, "movie metadata")?;
    Ok(catalog)
}

/// Reads `u.user` (`id|age|gender|occupation|zip`) and registers the user ids in `users`.
pub fn read_u_user<R: Read>(reader: R, path: &Path, users: &mut IdMap) -> Result<(), DataError> {
    let mut rec = Records::new(reader, path, PIPE)?;
    let mut n = 0;
    while rec.advance()? {
        rec.expect_fields(5, "id|age|gender|occupation|zip")?;
        let id = rec.int_id(0, "user id")?;
        let age = rec.integer(1, "age")?;
        if !(0..=150).contains(&age) {
            return Err(rec.bad(1, "age", "an age from 0 to 150"));
        }
        if users.index(&id).is_some() {
            return Err(rec.bad(0, "user id", "a user id not already listed"));
        }
        users.insert(&id)?;
        n += 1;
    }
    require_records(&rec, n, false, "users")
}

/// Reads `u.data` (tab-separated `user item rating timestamp`, integer ratings 1 to 5).
/// Items missing from `catalog` get placeholder entries.
pub fn read_u_data<R: Read>(
    reader: R,
    path: &Path,
    users: &mut IdMap,
    catalog: &mut Catalog,
) -> Result<Vec<Rating>, DataError> {
    let mut rec = Records::new(reader, path, TAB)?;
    let mut ratings = Vec::new();
    while rec.advance()? {
        rec.expect_fields(4, "user, item, rating, timestamp separated by tabs")?;
        let fields = ["user id", "item id", "timestamp"];
        ratings.push(read_rating(
            &rec,
            fields,
            users,
            catalog,
            |rec| match rec.integer(2, "rating") {
                Ok(v) if (1..=5).contains(&v) => Ok(v as f32),
                _ => Err(rec.bad(2, "rating", "an integer rating from 1 to 5")),
            },
        )?);
    }
    require_records(&rec, ratings.len(), false, "ratings")?;
    Ok(ratings)
}

/// The rating in the current record of a MovieLens ratings file: the user and item ids in
/// fields 0 and 1 and the timestamp in field 3 (named by `fields` in errors), the value read
/// and checked by `value`, in that order.
fn read_rating<R: Read>(
    rec: &Records<R>,
    fields: [&'static str; 3],
    users: &mut IdMap,
    catalog: &mut Catalog,
    value: impl FnOnce(&Records<R>) -> Result<f32, DataError>,
) -> Result<Rating, DataError> {
    let [user, item, timestamp] = fields;
    Ok(Rating {
        user: users.insert(&rec.int_id(0, user)?)?,
        item: catalog.item_or_placeholder(&rec.int_id(1, item)?)?,
        value: value(rec)?,
        timestamp: Some(rec.integer(3, timestamp)?),
    })
}

/// Loads a MovieLens 100K directory: `u.data` is required; `u.item`, `u.genre` and `u.user`
/// are read when present (without `u.item`, every item gets a placeholder and a warning).
pub fn load_ml100k(dir: &Path) -> Result<Dataset, DataError> {
    let genre_path = dir.join("u.genre");
    let genres = if genre_path.is_file() {
        read_u_genre(open(&genre_path)?, &genre_path)?
    } else {
        ML100K_GENRES.iter().map(|g| g.to_string()).collect()
    };
    let item_path = dir.join("u.item");
    let mut catalog = if item_path.is_file() {
        read_u_item(open(&item_path)?, &item_path, &genres)?
    } else {
        Catalog {
            genres,
            ..Catalog::default()
        }
    };
    let mut users = IdMap::new();
    let user_path = dir.join("u.user");
    if user_path.is_file() {
        read_u_user(open(&user_path)?, &user_path, &mut users)?;
    }
    let data_path = dir.join("u.data");
    let ratings = read_u_data(open(&data_path)?, &data_path, &mut users, &mut catalog)?;
    let scale = RatingScale { min: 1.0, max: 5.0 };
    let source = Source::file(Format::MovieLens100K, scale, dir, &data_path);
    Dataset::from_parts(source, users, catalog, ratings)
}

/// Checks that the current record is the expected header.
fn expect_header<R: Read>(rec: &Records<R>, names: &[&str]) -> Result<(), DataError> {
    let found: Vec<String> = (0..rec.record().len()).map(|i| rec.text(i)).collect();
    if found.len() == names.len() && found.iter().zip(names).all(|(f, n)| f == n) {
        Ok(())
    } else {
        Err(DataError::line(
            rec.path(),
            rec.line(),
            format!("the header {}", names.join(",")),
            super::error::quote(found.join(",").as_bytes()),
        ))
    }
}

/// Reads `movies.csv` (`movieId,title,genres`; genres `A|B` or `(no genres listed)`).
pub fn read_movies_csv<R: Read>(reader: R, path: &Path) -> Result<Catalog, DataError> {
    let mut rec = Records::new(reader, path, CSV)?;
    let mut catalog = Catalog::default();
    let mut header = false;
    while rec.advance()? {
        if !header {
            expect_header(&rec, &["movieId", "title", "genres"])?;
            header = true;
            continue;
        }
        rec.expect_fields(3, "movieId,title,genres")?;
        let id = rec.int_id(0, "movieId")?;
        let title = rec.text(1);
        if title.is_empty() {
            return Err(rec.bad(1, "title", "a title"));
        }
        let mut genres = Vec::new();
        let field = rec.text(2);
        if field != "(no genres listed)" {
            for name in field.split('|') {
                if name.trim().is_empty() {
                    return Err(rec.bad(2, "genres", "genres like A|B or (no genres listed)"));
                }
                let g = match catalog.genres.iter().position(|g| g == name.trim()) {
                    Some(g) => g,
                    None => {
                        catalog.genres.push(name.trim().to_owned());
                        catalog.genres.len() - 1
                    }
                };
                let g =
                    u16::try_from(g).map_err(|_| rec.bad(2, "genres", "at most 65536 genres"))?;
                if !genres.contains(&g) {
                    genres.push(g);
                }
            }
        }
        let meta = ItemMeta {
            year: title_year(&title),
            title,
            genres,
            has_metadata: true,
        };
        if catalog.add(&id, meta)?.is_none() {
            return Err(rec.bad(0, "movieId", "a movieId not already defined"));
        }
    }
    require_records(&rec, catalog.len(), header, "movies")?;
    Ok(catalog)
}

/// Reads `ratings.csv` (`userId,movieId,rating,timestamp`, ratings 0.5 to 5 in half stars).
pub fn read_ratings_csv<R: Read>(
    reader: R,
    path: &Path,
    users: &mut IdMap,
    catalog: &mut Catalog,
) -> Result<Vec<Rating>, DataError> {
    let mut rec = Records::new(reader, path, CSV)?;
    let mut ratings = Vec::new();
    let mut header = false;
    while rec.advance()? {
        if !header {
            expect_header(&rec, &["userId", "movieId", "rating", "timestamp"])?;
            header = true;
            continue;
        }
        rec.expect_fields(4, "userId,movieId,rating,timestamp")?;
        let fields = ["userId", "movieId", "timestamp"];
        ratings.push(read_rating(
            &rec,
            fields,
            users,
            catalog,
            |rec| match rec.number(2, "rating") {
                Ok(v) if (0.5..=5.0).contains(&v) && (v * 2.0).fract() == 0.0 => Ok(v),
                _ => Err(rec.bad(2, "rating", "a rating from 0.5 to 5 in half stars")),
            },
        )?);
    }
    require_records(&rec, ratings.len(), header, "ratings")?;
    Ok(ratings)
}

/// Loads MovieLens CSV data from `ratings` and, when given, the `movies` metadata file.
pub fn load_movielens_csv(ratings: &Path, movies: Option<&Path>) -> Result<Dataset, DataError> {
    let mut catalog = match movies {
        Some(m) => read_movies_csv(open(m)?, m)?,
        None => Catalog::default(),
    };
    let mut users = IdMap::new();
    let list = read_ratings_csv(open(ratings)?, ratings, &mut users, &mut catalog)?;
    let dir = ratings.parent().unwrap_or(ratings);
    let scale = RatingScale { min: 0.5, max: 5.0 };
    let source = Source::file(Format::MovieLensCsv, scale, dir, ratings);
    Dataset::from_parts(source, users, catalog, list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_from_titles_and_dates() {
        assert_eq!(title_year("Toy Tale (1995)"), Some(1995));
        assert_eq!(title_year("Blue Engine, The (2015) "), Some(2015));
        assert_eq!(title_year("Long Show (2007-2013)"), Some(2007));
        assert_eq!(title_year("unknown"), None);
        assert_eq!(title_year("Odd (19x5)"), None);
        assert_eq!(date_year("01-Jan-1995"), Some(1995));
        assert_eq!(date_year("4-Feb-1971"), Some(1971));
        assert_eq!(date_year("32-Jan-1995"), None);
        assert_eq!(date_year("01-Foo-1995"), None);
        assert_eq!(date_year("01-Jan-95"), None);
        assert_eq!(date_year(""), None);
    }

    #[test]
    fn u_item_without_enough_genre_flags_names_the_line() {
        let genres = vec!["a".to_string(), "b".to_string()];
        let bytes: &[u8] = b"1|T (1990)|01-Jan-1990||u|0|1\n2|U (1991)|01-Jan-1991||u|1\n";
        let e = read_u_item(bytes, Path::new("u.item"), &genres).unwrap_err();
        assert_eq!(
            e.to_string(),
            "u.item:2: expected 7 fields (id|title|date|video date|url|genre flags), found 6 fields"
        );
    }
}
