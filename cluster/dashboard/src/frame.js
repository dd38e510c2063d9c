// frame.js — render coalescing: many events per second become at most a few renders,
// each in an animation frame.

/**
 * Returns schedule(): calling it any number of times runs render() once, in the next
 * animation frame, and no sooner than minInterval ms after the previous run.
 */
export function coalesce(render, minInterval = 250) {
  let pending = false;
  let last = -Infinity;
  const run = () => {
    pending = false;
    last = performance.now();
    render();
  };
  return function schedule() {
    if (pending) return;
    pending = true;
    const wait = last + minInterval - performance.now();
    if (wait > 0) setTimeout(() => requestAnimationFrame(run), wait);
    else requestAnimationFrame(run);
  };
}
