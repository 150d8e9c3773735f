import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-wasm';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
await tf.setBackend('wasm');
const [opt, lrS, bsS, epS] = process.argv.slice(2);
const lr = Number(lrS), bs = Number(bsS), ep = Number(epS);
function load(p: string, n: number) {
  const img = gunzipSync(readFileSync(`/usr/share/datasets/fashion-mnist/${p}-images-idx3-ubyte.gz`));
  const lab = gunzipSync(readFileSync(`/usr/share/datasets/fashion-mnist/${p}-labels-idx1-ubyte.gz`));
  const x = new Float32Array(n*784); for (let i=0;i<n*784;i++) x[i]=img[16+i]/255;
  const y = new Int32Array(n); for (let i=0;i<n;i++) y[i]=lab[8+i];
  return {x,y};
}
const tr = load('train', 60000), te = load('t10k', 10000);
let s = 42; const rnd = () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2**32; };
const gauss = () => Math.sqrt(-2*Math.log(rnd()+1e-12))*Math.cos(2*Math.PI*rnd());
function gamma(a: number): number { if (a<1) return gamma(a+1)*Math.pow(rnd(),1/a); const d=a-1/3,c=1/Math.sqrt(9*d); for(;;){let x,v; do{x=gauss();v=1+c*x;}while(v<=0); v=v*v*v; const u=rnd(); if (Math.log(u)<0.5*x*x+d-d*v+d*Math.log(v)) return d*v;} }
const N=10; const parts: number[][] = Array.from({length:N},()=>[]);
for (let k=0;k<10;k++){ const idx=[]; for(let i=0;i<60000;i++) if(tr.y[i]===k) idx.push(i); const g=Array.from({length:N},()=>gamma(0.5)); const sum=g.reduce((a,b)=>a+b); let start=0; for(let j=0;j<N;j++){ const cnt = j===N-1? idx.length-start : Math.round(g[j]/sum*idx.length); parts[j].push(...idx.slice(start,start+cnt)); start+=cnt; } }
console.log('sizes', parts.map(p=>p.length).join(','));
const mk = () => tfl.sequential({layers:[tfl.layers.dense({inputShape:[784],units:200,activation:'relu'}),tfl.layers.dense({units:200,activation:'relu'}),tfl.layers.dense({units:10,activation:'softmax'})]});
const global = mk(); let gw = global.getWeights().map(w=>w.dataSync().slice() as Float32Array);
const shapes = global.getWeights().map(w=>w.shape);
const local = mk();
const tx = tf.tensor2d(te.x,[10000,784]), ty = tf.tensor1d(te.y,'float32');
const t0=Date.now();
for (let r=1;r<=20;r++){
  const sum = gw.map(w=>new Float32Array(w.length)); let tot=0;
  for (let c=0;c<N;c++){
    const ix=parts[c]; const n=ix.length; if(!n) continue;
    const x=new Float32Array(n*784), y=new Float32Array(n);
    for(let i=0;i<n;i++){ x.set(tr.x.subarray(ix[i]*784,ix[i]*784+784),i*784); y[i]=tr.y[ix[i]]; }
    local.setWeights(gw.map((w,i)=>tf.tensor(w,shapes[i])));
    const o = opt==='adam'? tf.train.adam(lr) : opt==='mom'? tf.train.momentum(lr,0.9) : tf.train.sgd(lr);
    local.compile({optimizer:o, loss:'sparseCategoricalCrossentropy'});
    const xs=tf.tensor2d(x,[n,784]), ys=tf.tensor1d(y);
    await local.fit(xs,ys,{epochs:ep,batchSize:bs,shuffle:true,verbose:0}); xs.dispose(); ys.dispose();
    local.getWeights().forEach((w,i)=>{const d=w.dataSync(); for(let j=0;j<d.length;j++) sum[i][j]+=n*d[j];}); tot+=n;
  }
  gw = sum.map(s=>s.map(v=>v/tot));
  global.setWeights(gw.map((w,i)=>tf.tensor(w,shapes[i])));
  global.compile({optimizer:'sgd',loss:'sparseCategoricalCrossentropy',metrics:['accuracy']});
  const ev = global.evaluate(tx,ty) as tf.Scalar[];
  console.log(opt,lr,bs,ep,'round',r,'acc',(await ev[1].data())[0].toFixed(4),'loss',(await ev[0].data())[0].toFixed(4),'t',Date.now()-t0);
}
