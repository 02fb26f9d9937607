// Loads the WASM and hydrates the page's islands as soon as the page has
// been parsed (see island_loader.rs for why not on an idle callback).
((js, wasm) => {
	import(js)
		.then(async (mod) => {
			await mod.default({ module_or_path: wasm });
			mod.hydrate();
			for (const el of document.querySelectorAll("leptos-island")) {
				const island = mod[el.dataset.component];
				if (island) {
					await island(el);
				} else {
					console.warn(`Embedded Chat: no browser code for the island ${el.dataset.component}`);
				}
			}
		})
		.catch((err) => console.error("Embedded Chat: the room's code did not load:", err));
})
