// A worker script that fails while loading, for the worker pool test.
throw new Error('this worker cannot start');
