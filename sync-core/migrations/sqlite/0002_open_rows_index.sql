-- Claims scan unfinished rows in id order; without this partial index they walk past every done row first.
CREATE INDEX inbox_open ON inbox (id) WHERE state IN ('queued', 'running');
