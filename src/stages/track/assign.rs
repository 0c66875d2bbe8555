//! Optimal assignment (Kuhn-Munkres / Hungarian, from the `pathfinding`
//! crate) of rows to columns under a cost matrix, with a maximum cost.

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

/// Cost units per 1.0: costs become integers for the solver.
const SCALE: f32 = 1_000_000.0;

/// Minimum-total-cost matching of `rows × cols` (`cost[r * cols + c]`), keeping
/// only pairs whose cost is at most `max_cost`. Returns `(row, col)` pairs.
pub fn assign(
    cost: &[f32],
    rows: usize,
    cols: usize,
    max_cost: f32,
    out: &mut Vec<(usize, usize)>,
) {
    out.clear();
    if rows == 0 || cols == 0 {
        return;
    }
    debug_assert_eq!(cost.len(), rows * cols);
    // The solver maximises weights and needs rows <= cols: transpose if needed.
    let transpose = rows > cols;
    let (r, c) = if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    };
    // Pairs above max_cost weigh as "no match" (0), so they never beat leaving both free.
    let weight = |i: usize, j: usize| -> i64 {
        let v = if transpose {
            cost[j * cols + i]
        } else {
            cost[i * cols + j]
        };
        if v.is_finite() && v <= max_cost {
            ((max_cost - v) * SCALE) as i64 + 1
        } else {
            0
        }
    };
    let weights = Matrix::from_fn(r, c, |(i, j)| weight(i, j));
    let (_, picked) = kuhn_munkres(&weights);
    for (i, &j) in picked.iter().enumerate() {
        if weight(i, j) > 0 {
            out.push(if transpose { (j, i) } else { (i, j) });
        }
    }
    out.sort_unstable();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_optimal_not_the_greedy_matching() {
        // Greedy takes (0,0)=0.1 then (1,1)=0.9; optimal is (0,1)+(1,0) = 0.4.
        let cost = [0.1, 0.2, 0.2, 0.9];
        let mut m = Vec::new();
        assign(&cost, 2, 2, 1.0, &mut m);
        assert_eq!(m, vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn respects_max_cost_and_rectangular_shapes() {
        let cost = [0.3, 0.95, 0.99, 0.2, 0.97, 0.98];
        let mut m = Vec::new();
        assign(&cost, 2, 3, 0.5, &mut m);
        assert_eq!(
            m,
            vec![(1, 0)],
            "only column 0 is under the limit; row 1 is cheaper there"
        );
        // 3 rows x 2 cols (transposed internally).
        let cost = [0.9, 0.1, 0.2, 0.9, 0.9, 0.9];
        assign(&cost, 3, 2, 0.5, &mut m);
        assert_eq!(m, vec![(0, 1), (1, 0)]);
    }
}
