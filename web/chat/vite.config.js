// The chat web UI: `npx vite build --config web/chat/vite.config.js` writes
// web/chat/dist, which `duplex serve --chat` serves. The duplex browser
// library is imported from ../client by relative path.
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  root: import.meta.dirname,
  base: './',
  plugins: [react()],
  logLevel: 'warn',
  build: {
    outDir: process.env.DX_CHAT_OUT || 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
  },
});
