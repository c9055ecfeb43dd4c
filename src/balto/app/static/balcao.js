"use strict";
// The counter client: microphone -> MediaRecorder (WebM/Opus, 100 ms slices) -> /ws, and what the
// server sends back (transcript, cards, checklist) on screen. Protocol: docs/protocol.md.
(() => {
  const $ = (id) => document.getElementById(id);
  // The server closes a segment when the slice that completes its silence arrives: shorter slices,
  // sooner transcripts (docs/performance.md).
  const TIMESLICE_MS = 100;
  const MIME = "audio/webm;codecs=opus";
  // Refusals that a retry cannot fix (bad key, bad settings, audio the server cannot read).
  const FATAL_CLOSE = new Set([4400, 4401, 4415, 4422]);
  const MAX_BACKOFF_MS = 30000;
  const MAX_ITEMS = 100;
  const KEY_STORE = "balto.api_key";
  const MIC_STORE = "balto.microfone";
  const VAD_STORE = "balto.vad";

  const state = {
    stream: null,
    ws: null,
    recorder: null,
    running: false,
    attempt: 0,
    retryTimer: null,
    pingTimer: null,
    audio: null,
    meter: null,
    lastError: "",
  };

  function setState(name, text) {
    const el = $("estado");
    el.dataset.estado = name;
    el.className = "estado " + name;
    el.textContent = text;
  }

  function notice(text, kind) {
    const el = $("aviso");
    el.textContent = text || "";
    el.className = "aviso" + (kind ? " " + kind : "");
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function trim(list) {
    while (list.children.length > MAX_ITEMS) list.removeChild(list.lastChild);
  }

  function clock() {
    return new Date().toLocaleTimeString("pt-BR", { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  // -- settings ------------------------------------------------------------------------------------

  function readVad() {
    const mult = Number($("vad-mult").value);
    const min = Number($("vad-min").value);
    if (!(mult >= 1 && mult <= 10)) throw new Error("O multiplicador deve estar entre 1 e 10.");
    if (!(min >= 0 && min <= 5000)) throw new Error("A energia mínima deve estar entre 0 e 5000.");
    return { threshold_multiplier: mult, min_energy: min };
  }

  function restore() {
    const key = localStorage.getItem(KEY_STORE);
    if (key) $("api-key").value = key;
    try {
      const vad = JSON.parse(localStorage.getItem(VAD_STORE) || "null");
      if (vad) {
        $("vad-mult").value = vad.threshold_multiplier;
        $("vad-min").value = vad.min_energy;
      }
    } catch (_) { /* a stale value: keep the defaults */ }
  }

  async function listMicrophones() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    const devices = await navigator.mediaDevices.enumerateDevices();
    const select = $("microfone");
    const wanted = select.value || localStorage.getItem(MIC_STORE) || "";
    select.textContent = "";
    select.appendChild(new Option("Padrão do sistema", ""));
    devices.filter((d) => d.kind === "audioinput" && d.deviceId && d.deviceId !== "default")
      .forEach((d, i) => select.appendChild(new Option(d.label || `Microfone ${i + 1}`, d.deviceId)));
    if ([...select.options].some((o) => o.value === wanted)) select.value = wanted;
  }

  // -- level meter ---------------------------------------------------------------------------------

  function startMeter(stream) {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    const ctx = new Context();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    ctx.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const bar = $("nivel");
    let peak = 0;
    const draw = () => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const db = 20 * Math.log10(Math.sqrt(sum / samples.length) + 1e-9);
      const pct = Math.max(0, Math.min(100, ((db + 60) / 60) * 100)); // -60 dBFS .. 0 dBFS
      bar.style.width = pct.toFixed(1) + "%";
      peak = Math.max(peak, pct);
      bar.parentElement.dataset.pico = Math.round(peak); // the loudest level since the start
      bar.className = pct > 90 ? "alto" : pct > 25 ? "fala" : "";
      state.meter = requestAnimationFrame(draw);
    };
    ctx.resume().catch(() => {});
    state.audio = ctx;
    draw();
  }

  function stopMeter() {
    if (state.meter) cancelAnimationFrame(state.meter);
    state.meter = null;
    if (state.audio) state.audio.close().catch(() => {});
    state.audio = null;
    $("nivel").style.width = "0";
  }

  // -- connection ----------------------------------------------------------------------------------

  async function start() {
    const key = $("api-key").value.trim();
    if (!key) {
      notice("Informe a chave da API do balcão.", "erro");
      return;
    }
    let vad;
    try {
      vad = readVad();
    } catch (e) {
      notice(e.message, "erro");
      return;
    }
    if ($("lembrar").checked) localStorage.setItem(KEY_STORE, key);
    else localStorage.removeItem(KEY_STORE);
    localStorage.setItem(VAD_STORE, JSON.stringify(vad));
    if (!window.MediaRecorder || !MediaRecorder.isTypeSupported(MIME)) {
      notice("Este navegador não grava áudio WebM/Opus; use Chrome, Edge ou Firefox atualizados.", "erro");
      return;
    }
    const mic = $("microfone").value;
    localStorage.setItem(MIC_STORE, mic);
    try {
      // The server cleans the audio and tracks the room's noise itself; the browser's own processing
      // (automatic gain above all) would move the noise floor its VAD measures.
      state.stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          deviceId: mic ? { exact: mic } : undefined,
          channelCount: 1,
          echoCancellation: false,
          noiseSuppression: false,
          autoGainControl: false,
        },
      });
    } catch (e) {
      notice("Não foi possível abrir o microfone: " + (e.message || e.name), "erro");
      return;
    }
    listMicrophones().catch(() => {}); // the names show once the microphone is allowed
    startMeter(state.stream);
    state.running = true;
    state.attempt = 0;
    state.lastError = "";
    $("iniciar").disabled = true;
    $("parar").disabled = false;
    document.body.classList.add("ativo");
    notice("");
    connect(key, vad);
  }

  function connect(key, vad) {
    state.retryTimer = null;
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    setState("conectando", state.attempt ? `Reconectando (tentativa ${state.attempt})…` : "Conectando…");
    const ws = new WebSocket(url);
    state.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ api_key: key, vad_settings: vad, transcricao: true, audio: { format: "webm" } }));
    };
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      handle(message, ws);
    };
    ws.onclose = (event) => closed(ws, event, key, vad);
  }

  function handle(message, ws) {
    switch (message.comando) {
      case "conectado":
        state.attempt = 0;
        setState("conectado", `Conectado · balcão ${message.balcao_id}`);
        if (!state.lastError) notice("");
        startRecorder(ws);
        startPing(ws);
        break;
      case "transcricao":
        addTranscript(message);
        break;
      case "recomendar":
        addCard(message, ws);
        break;
      case "checklist":
        showChecklist(message);
        break;
      case "feedback_registrado":
        document.querySelectorAll(`[data-interacao="${CSS.escape(message.interacao_id)}"] .feedback`)
          .forEach((node) => node.classList.add("registrado"));
        break;
      case "erro":
        state.lastError = message.codigo;
        notice(`O servidor recusou: ${message.mensagem} (${message.codigo})`, "erro");
        break;
      case "encerrado":
        notice(`Sessão encerrada: ${message.interacoes} interações registradas.`);
        break;
      default:
        break; // commands this page does not know are ignored, as the protocol asks
    }
  }

  function startRecorder(ws) {
    // A new recorder per connection: each WebSocket stream must begin with its own WebM header.
    const recorder = new MediaRecorder(state.stream, { mimeType: MIME, audioBitsPerSecond: 32000 });
    recorder.ondataavailable = (event) => {
      if (event.data && event.data.size > 0 && ws.readyState === WebSocket.OPEN) ws.send(event.data);
    };
    recorder.onstop = () => {
      // Stopped by the attendant: the last slice has gone out, so the server may finish the stream.
      if (!state.running && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ comando: "fim" }));
    };
    recorder.start(TIMESLICE_MS);
    state.recorder = recorder;
  }

  function stopRecorder() {
    const recorder = state.recorder;
    state.recorder = null;
    if (recorder && recorder.state !== "inactive") recorder.stop();
  }

  function startPing(ws) {
    clearInterval(state.pingTimer);
    state.pingTimer = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ comando: "ping" }));
    }, 20000);
  }

  function closed(ws, event, key, vad) {
    if (ws !== state.ws) return;
    clearInterval(state.pingTimer);
    stopRecorder();
    if (!state.running) {
      setState("desconectado", "Desconectado");
      release();
      return;
    }
    if (FATAL_CLOSE.has(event.code)) {
      state.running = false;
      release();
      setState("erro", "Recusado pelo servidor");
      if (!state.lastError) notice(`Conexão recusada (código ${event.code}).`, "erro");
      return;
    }
    state.attempt += 1;
    const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (state.attempt - 1));
    const delay = Math.round(base * (0.8 + 0.4 * Math.random())); // jitter: counters do not all retry at once
    setState("reconectando", `Conexão perdida · reconectando em ${Math.ceil(delay / 1000)} s`);
    notice(`A conexão caiu (código ${event.code}). Nova tentativa (${state.attempt}) em ${Math.ceil(delay / 1000)} s.`, "alerta");
    state.retryTimer = setTimeout(() => connect(key, vad), delay);
  }

  function stop() {
    state.running = false;
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    $("parar").disabled = true;
    const ws = state.ws;
    if (ws && ws.readyState === WebSocket.OPEN && state.recorder) {
      setState("encerrando", "Encerrando…");
      stopRecorder(); // its stop event sends "fim"; the server answers "encerrado" and closes
      setTimeout(() => {
        if (ws.readyState !== WebSocket.CLOSED) ws.close(1000);
      }, 20000);
    } else {
      if (ws && ws.readyState !== WebSocket.CLOSED) ws.close(1000);
      setState("desconectado", "Desconectado");
      release();
    }
  }

  function release() {
    stopMeter();
    if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
    state.stream = null;
    $("iniciar").disabled = false;
    $("parar").disabled = true;
    document.body.classList.remove("ativo");
  }

  // -- what the server says ------------------------------------------------------------------------

  function speakerOf(message) {
    const role = message.falante_papel;
    if (role === "atendente") return ["Atendente", "atendente"];
    if (role === "cliente") return ["Cliente", "cliente"];
    if (role) return [role.charAt(0).toUpperCase() + role.slice(1), "outro"];
    if (message.falante) return [message.falante, "outro"];
    if (message.falante_nome) return [message.falante_nome, "desconhecido"]; // an unenrolled voice: voz_1, ...
    return ["Não identificado", "desconhecido"];
  }

  function addTranscript(message) {
    const [label, cls] = speakerOf(message);
    const item = el("li", "fala " + cls);
    item.dataset.interacao = message.interacao_id;
    const who = el("span", "falante", label);
    if (message.falante_nome && message.falante_nome !== label) who.title = message.falante_nome;
    item.append(who, el("span", "texto", message.texto), el("time", "hora", clock()));
    const list = $("transcricao");
    list.prepend(item);
    trim(list);
    $("sem-transcricao").hidden = true;
  }

  function addCard(message, ws) {
    const origin = message.origem === "playbook" ? "playbook" : "llm";
    const card = el("li", "cartao " + origin);
    card.dataset.interacao = message.interacao_id;
    const head = el("div", "cabeca");
    head.append(
      el("span", "origem", origin === "playbook" ? "Playbook" : "IA (LLM)"),
      el("time", "hora", clock()),
    );
    const list = el("ul", "itens");
    for (const text of message.sugestoes || []) list.appendChild(el("li", "", text));
    const feedback = el("div", "feedback");
    for (const [useful, text] of [[true, "Ajudou"], [false, "Não ajudou"]]) {
      const button = el("button", useful ? "sim" : "nao", text);
      button.addEventListener("click", () => {
        if (ws.readyState !== WebSocket.OPEN) return;
        ws.send(JSON.stringify({ comando: "feedback", interacao_id: message.interacao_id, util: useful, origem: origin }));
        feedback.querySelectorAll("button").forEach((b) => b.classList.toggle("escolhido", b === button));
      });
      feedback.appendChild(button);
    }
    card.append(head, list, feedback);
    const cards = $("sugestoes");
    cards.prepend(card);
    trim(cards);
    $("sem-sugestoes").hidden = true;
  }

  function showChecklist(message) {
    const list = $("checklist");
    list.textContent = "";
    for (const item of message.itens || []) {
      const node = el("li", item.feito ? "feito" : "", item.texto);
      node.dataset.item = item.id;
      list.appendChild(node);
    }
    list.classList.toggle("encerrada", Boolean(message.encerrada));
  }

  // -- wiring --------------------------------------------------------------------------------------

  restore();
  $("iniciar").addEventListener("click", () => start());
  $("parar").addEventListener("click", () => stop());
  if (navigator.mediaDevices) {
    listMicrophones().catch(() => {});
    navigator.mediaDevices.addEventListener("devicechange", () => listMicrophones().catch(() => {}));
  } else {
    notice("Este navegador não dá acesso ao microfone nesta página (use https ou localhost).", "erro");
  }
})();
