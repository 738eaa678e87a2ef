//! Where a line's recurrent state lives between steps. After a batched step a
//! line's state is its row of the batch's output, kept as (batch, row) rather
//! than cut out; the next step gathers the rows it wants of each batch with an
//! `index_select` (none for a whole batch in its order), instead of two narrows
//! per row and a `cat` of them all.
//!
//! Memory is what cutting rows out held: a row cut out with `narrow` is a view
//! that keeps its batch's storage alive just the same.

use std::rc::Rc;

use tch::{Kind, Tensor};

use crate::model::lstm::LstmState;

/// A line's hidden and cell state: row `row` of `batch` (layers, rows, hidden).
#[derive(Debug, Clone)]
pub struct LineState {
    batch: Rc<LstmState>,
    row: i64,
}

impl LineState {
    /// A state of its own, (layers, 1, hidden).
    pub fn own(state: LstmState) -> LineState {
        LineState { batch: Rc::new(state), row: 0 }
    }

    /// Each row of `batch`, in order, as the state of one line.
    pub fn rows(batch: LstmState, rows: usize) -> impl Iterator<Item = LineState> {
        let batch = Rc::new(batch);
        (0..rows as i64).map(move |row| LineState { batch: batch.clone(), row })
    }
}

/// The states of `lines`, in order, as one batch (layers, `padded`, hidden); rows
/// past `lines.len()` are zeros.
///
/// Only the rows wanted are copied out of each batch they come from: a
/// realtime round steps the sessions that fell behind their listeners, whose
/// states lie in the batches of many earlier rounds, a few rows of each.
pub fn gather(lines: &[&LineState], padded: usize) -> LstmState {
    // The distinct batches the rows come from (in the order first met), the rows
    // wanted of each, and each line's place once those are laid side by side.
    let mut sources: Vec<(&Rc<LstmState>, Vec<i64>)> = Vec::new();
    let mut taken: Vec<(usize, i64)> = Vec::with_capacity(lines.len());
    for line in lines {
        let source = match sources.iter().position(|(source, _)| Rc::ptr_eq(source, &line.batch)) {
            Some(source) => source,
            None => {
                sources.push((&line.batch, Vec::new()));
                sources.len() - 1
            }
        };
        let rows = &mut sources[source].1;
        taken.push((source, rows.len() as i64));
        rows.push(line.row);
    }
    let offsets: Vec<i64> = sources
        .iter()
        .scan(0, |width, (_, rows)| {
            let offset = *width;
            *width += rows.len() as i64;
            Some(offset)
        })
        .collect();
    let places: Vec<i64> = taken.iter().map(|&(source, nth)| offsets[source] + nth).collect();
    let device = sources[0].0.h.device();
    // Per batch, one index for h and c alike; none for a whole batch in its order.
    let selections: Vec<Option<Tensor>> = sources
        .iter()
        .map(|(source, rows)| {
            let whole = rows.len() as i64 == source.h.size()[1]
                && rows.iter().enumerate().all(|(i, &row)| row == i as i64);
            (!whole).then(|| Tensor::from_slice(rows).to_device(device))
        })
        .collect();
    let in_place = places.iter().enumerate().all(|(i, &place)| place == i as i64);
    let order = (!in_place).then(|| Tensor::from_slice(&places).to_device(device));
    let pick = |of: fn(&LstmState) -> &Tensor| {
        let mut pieces: Vec<Tensor> = sources
            .iter()
            .zip(&selections)
            .map(|((source, _), selection)| match selection {
                Some(rows) => of(source).index_select(1, rows),
                None => of(source).shallow_clone(),
            })
            .collect();
        let side_by_side = match pieces.len() {
            1 => pieces.remove(0),
            _ => Tensor::cat(&pieces, 1),
        };
        let ordered = match &order {
            Some(order) => side_by_side.index_select(1, order),
            None => side_by_side,
        };
        pad(ordered, padded)
    };
    LstmState { h: pick(|state| &state.h), c: pick(|state| &state.c) }
}

fn pad(rows: Tensor, padded: usize) -> Tensor {
    let size = rows.size();
    let missing = padded as i64 - size[1];
    if missing <= 0 {
        return rows;
    }
    let zeros = Tensor::zeros([size[0], missing, size[2]], (Kind::Float, rows.device()));
    Tensor::cat(&[rows, zeros], 1)
}

#[cfg(test)]
mod tests {
    use tch::Device;

    use super::*;

    fn batch(rows: i64, from: f64) -> LstmState {
        let values = |offset: f64| {
            Tensor::arange(2 * rows * 3, (Kind::Float, Device::Cpu)).view([2, rows, 3]) + from + offset
        };
        LstmState { h: values(0.0), c: values(1000.0) }
    }

    fn row(state: &LstmState, row: i64) -> (Tensor, Tensor) {
        (state.h.narrow(1, row, 1), state.c.narrow(1, row, 1))
    }

    #[test]
    fn rows_gathered_from_batches_and_own_states_come_back_in_the_lines_order() {
        let first = batch(3, 0.0);
        let second = batch(2, 100.0);
        let own = batch(1, 500.0);
        let expected_rows = [row(&second, 1), row(&first, 2), row(&own, 0), row(&first, 0)];
        let first_lines: Vec<LineState> = LineState::rows(first, 3).collect();
        let second_lines: Vec<LineState> = LineState::rows(second, 2).collect();
        let own_line = LineState::own(own);
        let lines = [&second_lines[1], &first_lines[2], &own_line, &first_lines[0]];

        let gathered = gather(&lines, 6);
        assert_eq!(gathered.h.size(), [2, 6, 3]);
        for (index, (h, c)) in expected_rows.iter().enumerate() {
            let (gathered_h, gathered_c) = row(&gathered, index as i64);
            assert!(gathered_h.equal(h) && gathered_c.equal(c), "row {index}");
        }
        let padding = gathered.h.narrow(1, 4, 2);
        assert!(padding.equal(&padding.zeros_like()), "rows past the lines are zeros");
    }

    #[test]
    fn a_whole_batch_in_its_own_order_is_taken_as_it_is() {
        let whole = batch(4, 0.0);
        let h = whole.h.shallow_clone();
        let lines: Vec<LineState> = LineState::rows(whole, 4).collect();
        let gathered = gather(&lines.iter().collect::<Vec<_>>(), 4);
        assert_eq!(gathered.h.data_ptr(), h.data_ptr(), "no copy");

        let reversed: Vec<&LineState> = lines.iter().rev().collect();
        let gathered = gather(&reversed, 4);
        assert!(gathered.h.narrow(1, 0, 1).equal(&h.narrow(1, 3, 1)));
        assert!(gathered.h.narrow(1, 3, 1).equal(&h.narrow(1, 0, 1)));
    }
}
