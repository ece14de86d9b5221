// The interactive tape of a report page: candles with entries, exits, open positions and fold
// boundaries, drawn by TradingView's Lightweight Charts (inlined into the page before this script).
// Each `<div data-tape="ID">` reads its data from `<script type="application/json" id="ID">`.
// Zoom with the wheel, pan by dragging; the legend above the chart describes the hovered candle and
// the trades entering or leaving on it. Times are UTC.
(function () {
  "use strict";
  const LWC = window.LightweightCharts;
  const ENTRY = "#1565c0";
  const WON = "#2e7d32";
  const LOST = "#c62828";
  const OPEN = "#ff8f00";
  const FOLD = "#616161";

  function iso(seconds) {
    return new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function describe(trade, digits) {
    const side = trade.side > 0 ? "long" : "short";
    const net = (trade.net >= 0 ? "+" : "") + trade.net.toFixed(2);
    const exit = trade.open ? "still open, marked at " + trade.exit_price.toFixed(digits) : "exit " +
      trade.exit_price.toFixed(digits) + " " + trade.exit;
    return side + " " + trade.quantity + " entry " + trade.entry_price.toFixed(digits) + " " + trade.entry +
      ", " + exit + ", net " + net + " USDT (" + trade.reason + ")";
  }

  function draw(holder, data) {
    const box = holder.querySelector(".tape-chart");
    const legend = holder.querySelector(".tape-legend");
    const chart = LWC.createChart(box, {
      autoSize: true,
      layout: { attributionLogo: true },
      timeScale: { timeVisible: true, secondsVisible: false },
      rightPriceScale: { scaleMargins: { top: 0.08, bottom: 0.08 } },
    });
    const candles = chart.addSeries(LWC.CandlestickSeries, {
      upColor: "#26a69a", downColor: "#ef5350", wickUpColor: "#26a69a", wickDownColor: "#ef5350",
      borderVisible: false, priceLineVisible: false,
      priceFormat: { type: "price", precision: data.precision, minMove: Math.pow(10, -data.precision) },
    });
    candles.setData(data.t.map(function (time, i) {
      return { time: time, open: data.o[i], high: data.h[i], low: data.l[i], close: data.c[i] };
    }));
    const markers = [];
    const atBar = new Map();
    function note(time, trade) {
      if (!atBar.has(time)) atBar.set(time, []);
      atBar.get(time).push(trade);
    }
    data.trades.forEach(function (trade) {
      markers.push({
        time: trade.entry_bar, position: "atPriceMiddle", price: trade.entry_price,
        shape: trade.side > 0 ? "arrowUp" : "arrowDown", color: trade.open ? OPEN : ENTRY,
      });
      // Exits above the candle, so that a flip's exit (at the next entry's price) keeps its colour.
      markers.push(trade.open ? {
        time: trade.exit_bar, position: "atPriceMiddle", price: trade.exit_price, shape: "square", color: OPEN,
      } : {
        time: trade.exit_bar, position: "aboveBar", shape: "circle", color: trade.net > 0 ? WON : LOST, size: 0.6,
      });
      note(trade.entry_bar, trade);
      if (trade.exit_bar !== trade.entry_bar) note(trade.exit_bar, trade);
    });
    data.open_positions.forEach(function (position) {
      markers.push({
        time: position.bar, position: "atPriceMiddle", price: position.price,
        shape: position.side > 0 ? "arrowUp" : "arrowDown", color: OPEN,
      });
      candles.createPriceLine({
        price: position.price, color: OPEN, lineWidth: 1, lineStyle: LWC.LineStyle.Dashed,
        axisLabelVisible: true, title: position.title,
      });
    });
    data.boundaries.forEach(function (boundary) {
      markers.push({ time: boundary.time, position: "aboveBar", shape: "square", color: FOLD, text: boundary.label, size: 0.5 });
    });
    markers.sort(function (a, b) { return a.time - b.time; });
    LWC.createSeriesMarkers(candles, markers);
    if (data.boundaries.length) {
      // Full-height bars on a hidden scale of their own: vertical lines at the folds' first candles.
      const folds = chart.addSeries(LWC.HistogramSeries, {
        priceScaleId: "folds", color: "rgba(66, 66, 66, 0.6)", lastValueVisible: false, priceLineVisible: false,
      });
      chart.priceScale("folds").applyOptions({ scaleMargins: { top: 0, bottom: 0 }, visible: false });
      folds.setData(data.boundaries.map(function (boundary) { return { time: boundary.time, value: 1 }; }));
    }
    if (data.window && data.t.length > data.window) {
      // Many trades: open on a readable window (the first candles); the wheel zooms out to all of them.
      chart.timeScale().setVisibleLogicalRange({ from: 0, to: data.window });
    } else {
      chart.timeScale().fitContent();
    }
    legend.textContent = data.summary;
    chart.subscribeCrosshairMove(function (param) {
      if (param.time === undefined) {
        legend.textContent = data.summary;
        return;
      }
      const bar = param.seriesData.get(candles);
      const digits = data.precision;
      const lines = [iso(param.time) + (bar ? "  O " + bar.open.toFixed(digits) + "  H " + bar.high.toFixed(digits) +
        "  L " + bar.low.toFixed(digits) + "  C " + bar.close.toFixed(digits) : "")];
      (atBar.get(param.time) || []).slice(0, 6).forEach(function (trade) { lines.push(describe(trade, digits)); });
      legend.textContent = lines.join("\n");
    });
    holder.dataset.drawn = String(data.t.length);
  }

  document.querySelectorAll("[data-tape]").forEach(function (holder) {
    const data = JSON.parse(document.getElementById(holder.dataset.tape).textContent);
    try {
      draw(holder, data);
    } catch (error) {
      holder.querySelector(".tape-legend").textContent = "The interactive chart failed: " + error;
    }
  });
})();
