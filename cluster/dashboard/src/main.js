// main.js — the dashboard's entry point: wires the panels together (window switch, host
// selection shared by the risk table, anomaly feed and severity chart) and starts them.
// The panels' subscriptions share one stream (sse.js): those made while start() runs
// open it together, once the queries panel has its first listing; a window switch
// reopens it with the new window's risks and anomalies.

import 'uplot/dist/uPlot.min.css';
import './style.css';
import { startStatus } from './status.js';
import { createRisks } from './risks.js';
import { createSeverity } from './severity.js';
import { createAnomalies } from './anomalies.js';
import { createQueries } from './queries.js';
import { createSegments } from './segments.js';

const WINDOWS = ['30m', '2h', '24h'];

function start() {
  startStatus();

  let severity = null;
  const risks = createRisks({
    onTick: (asOf) => severity && severity.tick(asOf),
    onSelect: (ip) => severity && severity.track(ip),
  });
  severity = createSeverity(risks);
  const selectHost = (ip) => {
    risks.select(ip);
    severity.track(ip);
  };
  const anomalies = createAnomalies({ onHost: selectHost });

  const switcher = document.getElementById('window-switch');
  const buttons = [...switcher.querySelectorAll('button[data-window]')];
  let current = null;
  const setWindow = (w) => {
    if (!WINDOWS.includes(w) || w === current) return;
    current = w;
    for (const b of buttons) {
      const on = b.getAttribute('data-window') === w;
      b.classList.toggle('active', on);
      b.setAttribute('aria-pressed', on ? 'true' : 'false');
    }
    for (const label of document.querySelectorAll('.window-name')) label.textContent = w;
    risks.setWindow(w);
    anomalies.setWindow(w);
    severity.reset();
  };
  switcher.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-window]');
    if (button) setWindow(button.getAttribute('data-window'));
  });

  const initial = buttons.find((b) => b.classList.contains('active'));
  setWindow(initial ? initial.getAttribute('data-window') : WINDOWS[0]);
  severity.start();
  createQueries().start();
  createSegments().start();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
