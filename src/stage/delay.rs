//! `delay`: spends a fixed time on each frame, standing in for a slow model
//! (tests of back-pressure, drops and Ctrl-C).

use std::time::Duration;

use super::{Stage, StageError};
use crate::frame::{Frame, Record};

pub struct Delay {
    delay: Duration,
}

impl Delay {
    pub fn new(delay: Duration) -> Delay {
        Delay { delay }
    }
}

impl Stage for Delay {
    fn process(&mut self, _frame: &Frame, _record: &mut Record) -> Result<(), StageError> {
        std::thread::sleep(self.delay);
        Ok(())
    }
}
