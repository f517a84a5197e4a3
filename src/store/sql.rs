//! Statement text for multi-row writes: one statement carries many rows, so a batch costs
//! SQLite's connection thread (or PostgreSQL) a few round trips instead of one per row.

/// Most rows one multi-row statement carries. SQLite looks a parameter's name up by a scan
/// of the statement's list, once per parameter: 256 pushes of 13 columns in one statement
/// spent 9% of the push benchmark in `sqlite3_bind_parameter_name` (bench/profile.sh).
/// Fixed-size chunks also keep the prepared-statement cache to two shapes per statement.
pub(crate) const ROWS_PER_STATEMENT: usize = 32;

/// `($1, .., $cols), ($cols+1, ..)` for `rows` rows.
pub(crate) fn placeholders(rows: usize, cols: usize) -> String {
    placeholders_from(1, rows, cols)
}

/// [`placeholders`] numbered from `$first`.
pub(crate) fn placeholders_from(first: usize, rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (0..cols)
                .map(|c| format!("${}", first + r * cols + c))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$first, $first+1, ..` for `n` values.
pub(crate) fn id_list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn rows_are_numbered_in_order() {
        assert_eq!(super::placeholders(2, 2), "($1, $2), ($3, $4)");
        assert_eq!(super::placeholders_from(3, 1, 3), "($3, $4, $5)");
        assert_eq!(super::id_list(2, 3), "$2, $3, $4");
    }
}
