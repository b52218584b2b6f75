//! One header map's cache: single lookups, or the whole map once something needed it.

use std::cell::RefCell;
use std::rc::Rc;

use crate::{HeaderMap, Host};

/// A whole header map: names and values in order.
type Map = Vec<(String, Rc<str>)>;

/// Single lookups: a name and its first value (or `None`: absent).
type Lookups = Vec<(Box<str>, Option<Rc<str>>)>;

/// What is known of one header map. Names compare ignoring ASCII case (Envoy's are lowercase).
#[derive(Debug, Default)]
pub(super) struct HeaderCache {
    /// The whole map in order, once read. It answers every later lookup.
    all: RefCell<Option<Map>>,
    /// Single lookups made before the map was read.
    one: RefCell<Lookups>,
}

impl HeaderCache {
    /// The first value of `name`, from the cache or (once) from the host.
    pub(super) fn get(&self, host: &dyn Host, map: HeaderMap, name: &str) -> Option<Rc<str>> {
        if let Some(all) = &*self.all.borrow() {
            return all
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| Rc::clone(value));
        }
        if let Some((_, value)) = self
            .one
            .borrow()
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
        {
            return value.clone();
        }
        let value: Option<Rc<str>> = host.header(map, name).map(Rc::from);
        self.one.borrow_mut().push((name.into(), value.clone()));
        value
    }

    /// Runs `f` over the whole map, reading it from the host the first time.
    pub(super) fn with_all<R>(
        &self,
        host: &dyn Host,
        map: HeaderMap,
        f: impl FnOnce(&[(String, Rc<str>)]) -> R,
    ) -> R {
        if self.all.borrow().is_none() {
            let headers = host
                .headers(map)
                .into_iter()
                .map(|(name, value)| (name, Rc::from(value)))
                .collect();
            // The host's map already holds every write made through the cache.
            *self.all.borrow_mut() = Some(headers);
            self.one.borrow_mut().clear();
        }
        match &*self.all.borrow() {
            Some(all) => f(all),
            None => f(&[]),
        }
    }

    /// Records a replacement (or, with `None`, a removal) the host has just made.
    pub(super) fn set(&self, name: &str, value: Option<&str>) {
        let value: Option<Rc<str>> = value.map(Rc::from);
        if let Some(all) = &mut *self.all.borrow_mut() {
            all.retain(|(key, _)| !key.eq_ignore_ascii_case(name));
            if let Some(value) = &value {
                all.push((name.to_string(), Rc::clone(value)));
            }
            return;
        }
        let mut one = self.one.borrow_mut();
        match one
            .iter_mut()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
        {
            Some((_, known)) => *known = value,
            None => one.push((name.into(), value)),
        }
    }

    /// Records a value the host has just appended under `name`.
    pub(super) fn add(&self, name: &str, value: &str) {
        if let Some(all) = &mut *self.all.borrow_mut() {
            all.push((name.to_string(), Rc::from(value)));
            return;
        }
        let mut one = self.one.borrow_mut();
        // An earlier first value stays first; a name known to be absent now has this value; a
        // name never looked up stays unknown (earlier values may exist).
        if let Some((_, known @ None)) = one
            .iter_mut()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
        {
            *known = Some(Rc::from(value));
        }
    }
}
