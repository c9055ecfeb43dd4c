"use strict";
// The operator's console: polls /console/api/* with the admin key and draws the latency charts as
// inline SVG (no chart library: the page must work on a shop's offline server).
(() => {
  const $ = (id) => document.getElementById(id);
  const KEY_STORE = "balto.admin_key";
  const REFRESH_MS = 3000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  // One colour per stage, in the order a cycle runs through them (the same order as the API's list).
  const COLOURS = {
    fila: "#9aa5b1",
    transcricao: "#2f6fde",
    envio_transcricao: "#7fb0ff",
    playbook: "#1c9a6c",
    ia: "#e08a1e",
    envio_recomendacao: "#f5c26b",
    ate_transcricao: "#2f6fde",
    ate_playbook: "#1c9a6c",
    ate_ia: "#e08a1e",
  };
  const CYCLE_STAGES = ["fila", "transcricao", "envio_transcricao", "playbook", "ia", "envio_recomendacao"];
  let timer = null;
  let labels = {};

  function notice(text, kind) {
    $("aviso").textContent = text || "";
    $("aviso").className = "aviso" + (kind ? " " + kind : "");
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function ms(value) {
    if (value === null || value === undefined) return "—";
    return value >= 10000 ? (value / 1000).toFixed(1) + " s" : Math.round(value) + " ms";
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    return [1, 2, 2.5, 5, 10].map((m) => m * power).find((v) => v >= value);
  }

  async function api(path) {
    const response = await fetch(path, { headers: { "X-Admin-Key": localStorage.getItem(KEY_STORE) || "" } });
    if (response.status === 401) throw new Error("Chave de administrador ausente ou incorreta.");
    if (response.status === 404) throw new Error("Console desativado: defina BALTO_ADMIN_KEY no servidor.");
    if (!response.ok) throw new Error(`Erro ${response.status} em ${path}`);
    return response.json();
  }

  async function refresh() {
    if (!localStorage.getItem(KEY_STORE)) {
      notice("Informe a chave de administrador.", "alerta");
      return;
    }
    const balcao = $("filtro-balcao").value;
    const filter = balcao ? "&balcao_id=" + encodeURIComponent(balcao) : "";
    try {
      const [connected, rows, latencies] = await Promise.all([
        api("/console/api/balcoes"),
        api("/console/api/interacoes?limite=100" + filter),
        api("/console/api/latencias?limite=300" + filter),
      ]);
      labels = Object.fromEntries([...latencies.etapas, ...latencies.ponta_a_ponta].map((s) => [s.etapa, s.rotulo]));
      showConnected(connected);
      showFilter(connected, rows);
      showStageChart(latencies);
      showCycles(rows);
      showHistograms(latencies);
      showInteractions(rows);
      $("estado").className = "estado conectado";
      $("estado").textContent = "Atualizado às " + new Date().toLocaleTimeString("pt-BR");
      notice("");
    } catch (e) {
      $("estado").className = "estado erro";
      $("estado").textContent = "Sem dados";
      notice(e.message, "erro");
    }
  }

  // -- connected counters --------------------------------------------------------------------------

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.round(seconds);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function showConnected(list) {
    const body = $("conectados").querySelector("tbody");
    body.textContent = "";
    for (const c of list) {
      const row = el("tr");
      row.dataset.balcao = c.balcao_id;
      for (const text of [
        c.balcao_id,
        c.conexao_id,
        duration(c.conectado_ha_s),
        String(c.interacoes),
        c.transcricao ? "sim" : "não",
        `${c.vad_settings.threshold_multiplier} / ${c.vad_settings.min_energy}`,
      ]) row.appendChild(el("td", "", text));
      body.appendChild(row);
    }
    $("n-conectados").textContent = String(list.length);
    $("sem-conectados").hidden = list.length > 0;
    $("conectados").hidden = list.length === 0;
  }

  function showFilter(connected, rows) {
    const select = $("filtro-balcao");
    const known = new Set([...select.options].map((o) => o.value));
    for (const id of [...connected.map((c) => c.balcao_id), ...rows.map((r) => r.balcao_id)]) {
      if (!known.has(id)) {
        select.appendChild(new Option(id, id));
        known.add(id);
      }
    }
  }

  // -- charts --------------------------------------------------------------------------------------

  function showStageChart(latencies) {
    const box = $("grafico-etapas");
    box.textContent = "";
    const stages = [...latencies.etapas, ...latencies.ponta_a_ponta];
    $("latencia-n").textContent = `(${latencies.interacoes} interações mais recentes)`;
    if (!stages.some((s) => s.n > 0)) {
      box.appendChild(el("p", "vazio", "Sem medições ainda."));
      return;
    }
    const width = 640, rowH = 30, left = 250, right = 150, top = 8;
    const height = top + stages.length * rowH + 28;
    const max = niceMax(Math.max(...stages.map((s) => s.p90_ms || 0)));
    const scale = (v) => ((width - left - right) * v) / max;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "latência por etapa" });
    stages.forEach((s, i) => {
      const y = top + i * rowH;
      const endToEnd = i >= latencies.etapas.length;
      if (endToEnd && i === latencies.etapas.length) {
        chart.appendChild(svg("line", { x1: 0, x2: width, y1: y - 2, y2: y - 2, class: "separador" }));
      }
      chart.appendChild(svg("text", { x: left - 8, y: y + 18, "text-anchor": "end", class: endToEnd ? "rotulo forte" : "rotulo" }, s.rotulo));
      if (s.n === 0) {
        chart.appendChild(svg("text", { x: left + 4, y: y + 18, class: "nota" }, "não ocorreu"));
        return;
      }
      const colour = COLOURS[s.etapa] || "#555";
      chart.appendChild(svg("rect", { x: left, y: y + 5, width: Math.max(1, scale(s.p90_ms)), height: 18, fill: colour, opacity: 0.35 }));
      chart.appendChild(svg("rect", { x: left, y: y + 5, width: Math.max(1, scale(s.p50_ms)), height: 18, fill: colour, class: "barra", "data-etapa": s.etapa }));
      chart.appendChild(svg("text", { x: left + scale(s.p90_ms) + 6, y: y + 18, class: "nota" }, `${ms(s.p50_ms)} · p90 ${ms(s.p90_ms)} · n=${s.n}`));
    });
    axis(chart, left, width - right, height - 22, max);
    box.appendChild(chart);
  }

  function axis(chart, x0, x1, y, max) {
    chart.appendChild(svg("line", { x1: x0, x2: x1, y1: y, y2: y, class: "eixo" }));
    for (let i = 0; i <= 4; i++) {
      const x = x0 + ((x1 - x0) * i) / 4;
      chart.appendChild(svg("line", { x1: x, x2: x, y1: y, y2: y + 4, class: "eixo" }));
      chart.appendChild(svg("text", { x, y: y + 16, "text-anchor": "middle", class: "nota" }, ms((max * i) / 4)));
    }
  }

  function showCycles(rows) {
    const box = $("grafico-ciclos");
    box.textContent = "";
    const cycles = rows.filter((r) => CYCLE_STAGES.some((k) => r.latencias_ms[k] !== null)).slice(0, 40).reverse();
    if (!cycles.length) {
      box.appendChild(el("p", "vazio", "Sem ciclos medidos ainda."));
      return;
    }
    const width = 640, height = 300, left = 60, bottom = 24, top = 10, legendH = 44;
    const totals = cycles.map((r) => CYCLE_STAGES.reduce((sum, k) => sum + (r.latencias_ms[k] || 0), 0));
    const max = niceMax(Math.max(...totals));
    const plotH = height - top - bottom - legendH;
    const barW = Math.min(28, (width - left - 10) / cycles.length - 2);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "latência dos últimos ciclos" });
    for (let i = 0; i <= 4; i++) {
      const y = top + plotH - (plotH * i) / 4;
      chart.appendChild(svg("line", { x1: left, x2: width - 4, y1: y, y2: y, class: i ? "grade" : "eixo" }));
      chart.appendChild(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "nota" }, ms((max * i) / 4)));
    }
    cycles.forEach((r, i) => {
      const x = left + 4 + i * (barW + 2);
      let y = top + plotH;
      for (const k of CYCLE_STAGES) {
        const v = r.latencias_ms[k];
        if (!v) continue;
        const h = (plotH * v) / max;
        y -= h;
        const rect = svg("rect", { x, y, width: barW, height: Math.max(0.5, h), fill: COLOURS[k] });
        rect.appendChild(svg("title", {}, `${labels[k] || k}: ${ms(v)}${r.transcricao ? " — " + r.transcricao : ""}`));
        chart.appendChild(rect);
      }
    });
    let lx = left;
    CYCLE_STAGES.forEach((k, i) => {
      const ly = height - legendH + 6 + Math.floor(i / 3) * 18;
      if (i % 3 === 0) lx = left;
      chart.appendChild(svg("rect", { x: lx, y: ly, width: 12, height: 12, fill: COLOURS[k] }));
      chart.appendChild(svg("text", { x: lx + 16, y: ly + 11, class: "nota" }, labels[k] || k));
      lx += 190;
    });
    box.appendChild(chart);
  }

  function showHistograms(latencies) {
    const box = $("histogramas");
    box.textContent = "";
    for (const h of latencies.histogramas) {
      const figure = el("figure");
      figure.appendChild(el("figcaption", "", h.rotulo));
      const summary = latencies.ponta_a_ponta.find((s) => s.etapa === h.etapa);
      if (!h.contagens.length) {
        figure.appendChild(el("p", "vazio", "Sem medições."));
        box.appendChild(figure);
        continue;
      }
      const width = 320, height = 190, left = 34, bottom = 34, top = 18;
      const plotW = width - left - 26, plotH = height - top - bottom;
      const max = Math.max(...h.contagens);
      const barW = plotW / h.contagens.length;
      const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": h.rotulo, class: "histograma", "data-etapa": h.etapa });
      h.contagens.forEach((count, i) => {
        const bh = (plotH * count) / max;
        const rect = svg("rect", { x: left + i * barW + 1, y: top + plotH - bh, width: barW - 2, height: bh, fill: COLOURS[h.etapa] || "#555" });
        rect.appendChild(svg("title", {}, `${ms(h.limites_ms[i])} a ${ms(h.limites_ms[i + 1])}: ${count}`));
        chart.appendChild(rect);
        if (count) chart.appendChild(svg("text", { x: left + (i + 0.5) * barW, y: top + plotH - bh - 3, "text-anchor": "middle", class: "nota" }, String(count)));
      });
      chart.appendChild(svg("line", { x1: left, x2: left + plotW, y1: top + plotH, y2: top + plotH, class: "eixo" }));
      const ticks = [0, Math.floor(h.contagens.length / 2), h.contagens.length];
      for (const i of ticks) {
        chart.appendChild(svg("text", { x: left + i * barW, y: top + plotH + 14, "text-anchor": "middle", class: "nota" }, ms(h.limites_ms[i])));
      }
      if (summary && summary.n) {
        chart.appendChild(svg("text", { x: left, y: height - 4, class: "nota" }, `n=${summary.n} · p50 ${ms(summary.p50_ms)} · p90 ${ms(summary.p90_ms)} · máx ${ms(summary.max_ms)}`));
      }
      figure.appendChild(chart);
      box.appendChild(figure);
    }
  }

  // -- interactions --------------------------------------------------------------------------------

  function speaker(r) {
    if (r.falante_papel === "atendente") return "Atendente";
    if (r.falante_papel === "cliente") return "Cliente";
    if (r.falante_papel) return r.falante_papel;
    return r.falante_nome || "—"; // a voice nobody enrolled: the connection's label (voz_1, ...)
  }

  function showInteractions(rows) {
    const box = $("interacoes");
    box.textContent = "";
    const groups = new Map();
    for (const r of rows) {
      if (!groups.has(r.balcao_id)) groups.set(r.balcao_id, []);
      groups.get(r.balcao_id).push(r);
    }
    for (const [balcao, list] of [...groups.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
      const section = el("div", "grupo-balcao");
      section.dataset.balcao = balcao;
      section.appendChild(el("h3", "", `Balcão ${balcao}`));
      const table = el("table", "tabela interacoes");
      const head = el("tr");
      for (const h of ["Hora", "Falante", "Transcrição", "Sugestões", "IA", "STT", "Até a tela"]) head.appendChild(el("th", "", h));
      table.appendChild(el("thead")).appendChild(head);
      const body = table.appendChild(el("tbody"));
      for (const r of list.slice(0, 15)) {
        const row = el("tr");
        row.dataset.uuid = r.uuid;
        row.appendChild(el("td", "hora", r.quando ? new Date(r.quando).toLocaleTimeString("pt-BR") : "—"));
        const who = el("td", "falante", speaker(r));
        if (r.falante_nome) who.title = `${r.falante_nome}${r.falante_prob !== null ? ` (${Math.round(r.falante_prob * 100)}%)` : ""}`;
        row.appendChild(who);
        row.appendChild(el("td", "texto", r.transcricao === null ? "(disparo do temporizador)" : r.transcricao || "(vazio)"));
        const cards = el("td", "sugestoes");
        for (const text of r.sugestoes_playbook) cards.appendChild(el("div", "sugestao playbook", text));
        for (const text of r.sugestoes_ia) cards.appendChild(el("div", "sugestao llm", text));
        row.appendChild(cards);
        const ia = el("td");
        ia.appendChild(el("span", "selo ia-" + r.ia_status, r.ia_status));
        if (r.ia_provider) ia.appendChild(el("small", "", " " + r.ia_provider));
        row.appendChild(ia);
        row.appendChild(el("td", "", [r.stt_status || "—", r.stt_provider || ""].join(" ").trim()));
        const lat = r.latencias_ms;
        const shown = [lat.ate_transcricao, lat.ate_playbook, lat.ate_ia].filter((v) => v !== null);
        row.appendChild(el("td", "numero", shown.length ? ms(Math.min(...shown)) : "—"));
        body.appendChild(row);
      }
      section.appendChild(table);
      box.appendChild(section);
    }
    $("sem-interacoes").hidden = rows.length > 0;
  }

  // -- wiring --------------------------------------------------------------------------------------

  function schedule() {
    clearInterval(timer);
    timer = $("auto").checked ? setInterval(refresh, REFRESH_MS) : null;
  }

  $("admin-key").value = localStorage.getItem(KEY_STORE) || "";
  $("entrar").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(KEY_STORE, $("admin-key").value.trim());
    refresh();
  });
  $("atualizar").addEventListener("click", refresh);
  $("filtro-balcao").addEventListener("change", refresh);
  $("auto").addEventListener("change", schedule);
  schedule();
  refresh();
})();
